"""A PyTorch peer of paper 3's Table S1 step: the same networks, loss, update and optimizer.

Used by :mod:`benchmarks.peer` to time the library's step against a plain PyTorch
implementation in the same process, round-robin. What is identical to the library's
``dcgan_s1`` joint MMD-rep step (``benchmarks.train_step`` case ``mmd_rep/joint/graph``):

* generator (paper 3 Table S1, 32 px): dense 128 → 4·4·512 (linear), three 4×4 stride-2
  transposed convs 256, 128, 64 (each BN + ReLU), 3×3 conv to 3 channels, tanh;
* critic: 3×3 s1 64, 4×4 s2 128, 3×3 s1 128, 4×4 s2 256, 3×3 s1 256, 4×4 s2 512, 3×3 s1 512
  (LeakyReLU 0.1), dense 16; every layer with bias; SAME padding (= PyTorch padding 1 here);
* spectral normalization of every critic layer: PICO (paper 3 App. C; the power iteration on
  the convolution operator itself with ``conv2d`` / ``conv_transpose2d``, a persistent
  input-shaped vector, one round per training call, ``W_eff = C·W/σ`` with ``C = 64^(1/8)``),
  or PIM (Miyato et al.: the kernel reshaped ``[c_out, c_in·kh·kw]``, persistent ``u``);
* loss: Gaussian kernel σ = 1 on the critic's 16-d features; critic
  ``L_D = E k(x, x′) − E k(y, y′)`` (paper 3 Eq. 4), generator ``L_G = MMD²`` (unbiased);
  the critic runs once on the 128 images ``[real; fake]``;
* update: paper 3's joint step — one forward pass, ``∂L_D/∂critic`` and ``∂L_G/∂generator``,
  both applied; Adam(lr 1e-4, β = (0.5, 0.9)) for each network; batch 64.

:func:`step_flops` counts the step's convolution/matmul FLOPs with PyTorch's own
``FlopCounterMode`` (forward + backward), to compare with the library's graph count.
"""

import torch
from torch import nn
from torch.nn import functional as F

LATENT_DIM = 128
CRITIC_CONVS = ((64, 3, 1), (128, 4, 2), (128, 3, 1), (256, 4, 2), (256, 3, 1), (512, 4, 2), (512, 3, 1))
PICO_GAIN = 64.0


def _unit(t, eps=1e-12):
    return t * torch.rsqrt(torch.clamp((t * t).sum(), min=eps))


class SNConv(nn.Module):
    """``Conv2d`` with PICO or PIM spectral normalization, as the library's ``SNConv2D``."""

    def __init__(self, c_in, c_out, kernel, stride, size, mode, gain):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding=1)
        self.mode, self.gain, self.stride = mode, gain, stride
        if mode == "pico":
            self.register_buffer("x", torch.randn(1, c_in, size, size))
        else:
            self.register_buffer("u", torch.randn(1, c_out))

    def sigma(self, weight):
        if self.mode == "pico":
            with torch.no_grad():
                w = weight.detach()
                u = _unit(F.conv2d(_unit(self.x), w, stride=self.stride, padding=1))
                x = _unit(F.conv_transpose2d(u, w, stride=self.stride, padding=1))
                self.x.copy_(x)
            return torch.sqrt(torch.clamp((F.conv2d(x, weight, stride=self.stride, padding=1) ** 2).sum(),
                                          min=1e-12))
        return _pim_sigma(self, weight.reshape(weight.shape[0], -1))

    def forward(self, h):
        weight = self.conv.weight * (self.gain / self.sigma(self.conv.weight))
        return F.conv2d(h, weight, self.conv.bias, stride=self.stride, padding=1)


def _pim_sigma(module, matrix):
    """σ of ``matrix`` [c_out, n] by one power-iteration round on the persistent ``u`` [1, c_out]."""
    with torch.no_grad():
        v = _unit(module.u @ matrix.detach())
        u = _unit(v @ matrix.detach().t())
        module.u.copy_(u)
    return (u @ matrix @ v.t()).squeeze()


class SNLinear(nn.Module):
    """``Linear`` with the (PICO = PIM) matrix spectral norm."""

    def __init__(self, d_in, d_out, mode, gain):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)
        self.gain = gain
        self.register_buffer("u", torch.randn(1, d_out))

    def forward(self, h):
        weight = self.linear.weight * (self.gain / _pim_sigma(self, self.linear.weight))
        return F.linear(h, weight, self.linear.bias)


def generator():
    return nn.Sequential(
        nn.Linear(LATENT_DIM, 4 * 4 * 512), nn.Unflatten(1, (512, 4, 4)),
        nn.ConvTranspose2d(512, 256, 4, 2, 1), nn.BatchNorm2d(256), nn.ReLU(),
        nn.ConvTranspose2d(256, 128, 4, 2, 1), nn.BatchNorm2d(128), nn.ReLU(),
        nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Conv2d(64, 3, 3, 1, 1), nn.Tanh())


def critic(sn_mode="pico"):
    """The Table S1 critic; ``sn_mode`` "pico" (paper 3's default) or "pim"."""
    gain = PICO_GAIN ** (1.0 / (len(CRITIC_CONVS) + 1)) if sn_mode == "pico" else 1.0
    layers, c_in, size = [], 3, 32
    for c_out, kernel, stride in CRITIC_CONVS:
        layers += [SNConv(c_in, c_out, kernel, stride, size, sn_mode, gain), nn.LeakyReLU(0.1)]
        c_in, size = c_out, size // stride
    layers += [nn.Flatten(), SNLinear(c_in * size * size, 16, sn_mode, gain)]
    return nn.Sequential(*layers)


def gaussian(a, b):
    return torch.exp(-0.5 * torch.cdist(a, b).pow(2))


def repulsive_losses(real_features, fake_features):
    """``(L_D, L_G)``: paper 3's repulsive critic loss and the unbiased MMD², Gaussian σ = 1."""
    n = real_features.shape[0]
    k_xx, k_yy = gaussian(real_features, real_features), gaussian(fake_features, fake_features)
    k_xy = gaussian(real_features, fake_features)
    off = (1 - torch.eye(n, dtype=k_xx.dtype))
    e_xx, e_yy = (k_xx * off).sum() / (n * (n - 1)), (k_yy * off).sum() / (n * (n - 1))
    return e_xx - e_yy, e_xx + e_yy - 2 * k_xy.mean()


class JointStep:
    """Paper 3's joint MMD-rep update of the Table S1 pair; ``step(real)`` returns ``L_G``."""

    def __init__(self, sn_mode="pico", batch=64, seed=0):
        torch.manual_seed(seed)
        self.generator, self.critic = generator(), critic(sn_mode)
        self.batch = batch
        adam = dict(lr=1e-4, betas=(0.5, 0.9))
        self.g_opt = torch.optim.Adam(self.generator.parameters(), **adam)
        self.c_opt = torch.optim.Adam(self.critic.parameters(), **adam)

    def losses(self, real):
        fake = self.generator(torch.randn(self.batch, LATENT_DIM))
        features = self.critic(torch.cat([real, fake]))
        return repulsive_losses(features[:self.batch], features[self.batch:])

    def step(self, real):
        critic_loss, generator_loss = self.losses(real)
        c_params, g_params = list(self.critic.parameters()), list(self.generator.parameters())
        c_grads = torch.autograd.grad(critic_loss, c_params, retain_graph=True)
        g_grads = torch.autograd.grad(generator_loss, g_params)
        for params, grads, opt in ((c_params, c_grads, self.c_opt), (g_params, g_grads, self.g_opt)):
            for p, g in zip(params, grads):
                p.grad = g
            opt.step()
        return generator_loss.detach()


def real_batch(batch=64, seed=1):
    return torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def step_flops(sn_mode="pico", batch=64):
    """Conv + matmul FLOPs of one joint step by PyTorch's ``FlopCounterMode`` (forward + backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    step = JointStep(sn_mode, batch)
    real = real_batch(batch)
    with FlopCounterMode(display=False) as counter:
        step.step(real)
    return counter.get_total_flops()


def make(compiled=False, sn_mode="pico", batch=64):
    """A zero-argument callable: one joint step on a fixed real batch, eager or ``torch.compile``d."""
    step = JointStep(sn_mode, batch)
    real = real_batch(batch)
    fn = torch.compile(step.step) if compiled else step.step
    return lambda: fn(real)
