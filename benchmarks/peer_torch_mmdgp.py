"""A PyTorch peer of paper 1's MNIST MMD-GP step: the same networks, loss, schedule and optimizer.

Used by :mod:`benchmarks.peer` to time the library's paper-1 step (``configs/mnist_mmd_rqstar.cfg``
at 32 px, :func:`benchmarks.peer.paper1_step`) against plain PyTorch, round-robin in one
process. What is identical to the library's step (``MMDGAN.train_step``, fixed schedule):

* generator ``dcgan_p1`` (paper 1's DCGAN): dense 100 → 2·2·512, BN, ReLU; 5×5 stride-2
  transposed convs 256, 128, 64 (each BN + ReLU); a 5×5 stride-2 transposed conv to 1 channel,
  tanh. BN as Keras's (ε = 1e-3, momentum 0.9 as the config: paper 1's official decay, batch statistics in training; the running
  variance is PyTorch's unbiased one, Keras keeps the biased one: not used by the step);
* critic ``dcgan_p1`` with widths 16, 32, 64, 128: 5×5 stride-2 convs, LeakyReLU 0.2, dense 16;
  every layer with bias. Padding is TF's ``same`` exactly (:func:`same_pads`: 1 before, 2 after
  at even sizes; PyTorch's symmetric ``padding=2`` would shift every window by one pixel), and
  a transposed conv is the adjoint of that convolution;
* loss (paper 1, §3 and §5; :class:`mmd_keras.losses.MMDLoss`): the rq* kernel
  Σ_α (1 + ‖x−y‖²/(2α))^(−α) + ⟨x, y⟩, α ∈ ``kernels.PAPER1_RQ_ALPHAS``, on the critic's 16-d
  features; the unbiased MMD² (true diagonals removed); critic ``−MMD² + 1·GP + 1·L2`` with the
  witness gradient penalty E(‖∇_x̂ w(x̂)‖₂ − 1)² at x̂ = x + α(y − x), α ~ U(0, 1) per sample,
  w(x̂) = mean_j k(h(x̂), h(x_j)) − mean_j k(h(x̂), h(y_j)), differentiated to second order
  (``create_graph``), and the L2 penalty Σ_layers mean(a²) over every LeakyReLU output and the
  features, for the real and the fake batch (paper 1, footnote 19). The critic runs once on
  ``[real; fake; x̂]`` (the generator step: once on ``[real; fake]``, loss MMD²);
* schedule: 5 critic steps, each on fresh fakes from U[−1, 1]¹⁰⁰ latents (generator in
  training mode, no gradient), then one generator step; every gradient tensor clipped to norm 1
  (``tf.clip_by_norm``); ``torch.optim.Adam``(1e-4, β = (0.5, 0.9), ε = 1e-7) per network
  (PyTorch adds ε to √v̂, Keras to √v — the tests correct that to replay a step); batch 64.

:func:`step_flops` counts the step's conv/matmul FLOPs with PyTorch's ``FlopCounterMode``;
:func:`load_keras_weights` copies a library network's weights into the peer (NHWC → NCHW).
"""

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mmd_keras.kernels import PAPER1_RQ_ALPHAS
from mmd_keras.networks.dcgan import conv_sizes

LATENT_DIM = 100
GENERATOR_WIDTHS = (512, 256, 128, 64)
CRITIC_WIDTHS = (16, 32, 64, 128)
KERNEL = 5
BN = dict(eps=1e-3, momentum=0.1)  # Keras's ε; the config's momentum 0.9 (PyTorch counts 1 − it)


def same_pads(size, kernel, stride):
    """(before, after) zero padding of TF's ``same`` convolution of a ``size`` input."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv(nn.Conv2d):
    """``Conv2d`` with TF's ``same`` padding (asymmetric at even sizes) for a ``size`` input."""

    def __init__(self, c_in, c_out, kernel, stride, size):
        super().__init__(c_in, c_out, kernel, stride)
        before, after = same_pads(size, kernel, stride)
        self.pads = (before, after, before, after)

    def forward(self, x):
        return super().forward(F.pad(x, self.pads) if any(self.pads) else x)


class SameDeconv(nn.ConvTranspose2d):
    """TF's ``conv2d_transpose`` to a ``size`` output: the adjoint of :class:`SameConv` of that size.

    PyTorch crops ``padding`` from both ends of the full transposed convolution; TF's window
    starts at the forward padding's ``before``, so crop that much and drop the extra tail.
    """

    def __init__(self, c_in, c_out, kernel, stride, size):
        super().__init__(c_in, c_out, kernel, stride, padding=same_pads(size, kernel, stride)[0])
        self.size = size

    def forward(self, x):
        y = super().forward(x)
        return y if y.shape[-1] == self.size else y[:, :, :self.size, :self.size]


class Generator(nn.Module):
    """Paper 1's DCGAN generator (``dcgan_p1``); layer names as the library's."""

    def __init__(self, image_size=32, channels=1, latent_dim=LATENT_DIM, widths=GENERATOR_WIDTHS):
        super().__init__()
        sizes = conv_sizes(image_size, len(widths))[::-1]
        self.start = (widths[0], sizes[0], sizes[0])
        self.dense = nn.Linear(latent_dim, widths[0] * sizes[0] ** 2)
        self.dense_bn = nn.BatchNorm1d(widths[0] * sizes[0] ** 2, **BN)
        self.ups = nn.ModuleDict()
        for i, (c_in, c_out) in enumerate(zip(widths, widths[1:])):
            self.ups[f"deconv{i}"] = SameDeconv(c_in, c_out, KERNEL, 2, sizes[i + 1])
            self.ups[f"deconv{i}_bn"] = nn.BatchNorm2d(c_out, **BN)
            self.ups[f"relu{i}"] = nn.ReLU()
        self.ups["to_image"] = SameDeconv(widths[-1], channels, KERNEL, 2, image_size)

    def forward(self, latents):
        h = F.relu(self.dense_bn(self.dense(latents))).unflatten(1, self.start)
        for layer in self.ups.values():
            h = layer(h)
        return torch.tanh(h)


class Critic(nn.Module):
    """Paper 1's DCGAN critic (``dcgan_p1``); ``activations(x)`` also returns the L2-penalized tensors."""

    def __init__(self, image_size=32, channels=1, widths=CRITIC_WIDTHS, output_dim=16, slope=0.2):
        super().__init__()
        sizes = conv_sizes(image_size, len(widths))
        self.convs = nn.ModuleDict({f"conv{i}": SameConv(c_in, c_out, KERNEL, 2, sizes[i])
                                    for i, (c_in, c_out) in enumerate(zip((channels,) + tuple(widths), widths))})
        self.dense = nn.Linear(widths[-1] * sizes[-1] ** 2, output_dim)
        self.slope = slope

    def activations(self, images):
        """(LeakyReLU outputs, one per conv; features [b, output_dim])."""
        h, outputs = images, []
        for conv in self.convs.values():
            h = F.leaky_relu(conv(h), self.slope)
            outputs.append(h)
        return outputs, self.dense(h.flatten(1))

    def forward(self, images):
        return self.activations(images)[1]


# --- the loss (pure functions of tensors) ---------------------------------------------------------

def rq_dot_matrix(x, y, alphas=PAPER1_RQ_ALPHAS, same=False):
    """rq*: Σ_α (1 + d²/(2α))^(−α) + ⟨x, y⟩, [n, m]; d² clamped at 0, exactly 0 on a ``same`` diagonal."""
    dot = x @ y.t()
    d2 = torch.clamp((x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * dot, min=0.0)
    if same:
        d2 = d2 * (1 - torch.eye(x.shape[0], dtype=d2.dtype))
    return sum((1 + d2 / (2 * a)) ** -a for a in alphas) + dot


def _off_diagonal_mean(k):
    n = k.shape[0]
    return (k.sum() - torch.diagonal(k).sum()) / (n * (n - 1))


def mmd2(real_features, fake_features, alphas=PAPER1_RQ_ALPHAS):
    """The unbiased MMD² with the rq* kernel (papers 1–2; true diagonals removed)."""
    k_xx = rq_dot_matrix(real_features, real_features, alphas, same=True)
    k_yy = rq_dot_matrix(fake_features, fake_features, alphas, same=True)
    k_xy = rq_dot_matrix(real_features, fake_features, alphas)
    return _off_diagonal_mean(k_xx) + _off_diagonal_mean(k_yy) - 2 * k_xy.mean()


def _safe_sqrt(t):
    positive = t > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, t, torch.ones_like(t))), torch.zeros_like(t))


def critic_loss(critic, real, fake, alpha, alphas=PAPER1_RQ_ALPHAS, gp_weight=1.0, l2_weight=1.0):
    """``(loss, parts)``: −MMD² + gp_weight·GP + l2_weight·L2 of paper 1, with weights α [b] given.

    The critic runs once on ``[real; fake; x̂]``; the GP's input gradient keeps its graph, so
    the loss's gradient includes the second-order term, as the library's.
    """
    b = real.shape[0]
    hat = (real + alpha.view(-1, 1, 1, 1) * (fake - real)).detach().requires_grad_(True)
    activations, features = critic.activations(torch.cat([real, fake, hat]))
    real_f, fake_f, hat_f = features.split(b)
    value = mmd2(real_f, fake_f, alphas)
    witness = rq_dot_matrix(hat_f, real_f, alphas).mean(1) - rq_dot_matrix(hat_f, fake_f, alphas).mean(1)
    (grad,) = torch.autograd.grad(witness.sum(), hat, create_graph=True)
    gp = ((_safe_sqrt((grad * grad).flatten(1).sum(1)) - 1) ** 2).mean()
    l2 = sum((a[i * b:(i + 1) * b] ** 2).mean() for a in activations + [features] for i in range(2))
    return -value + gp_weight * gp + l2_weight * l2, {"mmd2": value, "gradient_penalty": gp,
                                                       "activation_penalty": l2}


# --- the step ---------------------------------------------------------------------------------------

def _apply(optimizer, params, loss, clip_norm):
    """``tf.clip_by_norm`` on every gradient tensor (g·c/max(‖g‖, c)), then the optimizer."""
    grads = torch.autograd.grad(loss, params)
    for p, g in zip(params, grads):
        p.grad = g * (clip_norm / torch.clamp(torch.linalg.vector_norm(g), min=clip_norm))
    optimizer.step()


class MMDGPStep:
    """Paper 1's step (5 critic steps, then one generator step); ``step(real)`` returns MMD².

    ``uniform(shape, index, purpose)``: the U(0, 1) draws (``purpose`` "latents" or "loss",
    ``index`` the critic step or "generator"); default ``torch.rand``. A test passes the
    library's stateless draws to replay its step; ``losses`` then lists every step's loss.
    """

    def __init__(self, batch=64, image_size=32, critic_steps=5, alphas=PAPER1_RQ_ALPHAS, clip_norm=1.0, seed=0,
                 uniform=None):
        torch.manual_seed(seed)
        self.generator, self.critic = Generator(image_size), Critic(image_size)
        self.batch, self.critic_steps, self.alphas, self.clip_norm = batch, critic_steps, alphas, clip_norm
        self.uniform = uniform or (lambda shape, index, purpose: torch.rand(shape))
        self.losses = []
        adam = dict(lr=1e-4, betas=(0.5, 0.9), eps=1e-7)
        self.g_params, self.c_params = list(self.generator.parameters()), list(self.critic.parameters())
        self.g_opt, self.c_opt = torch.optim.Adam(self.g_params, **adam), torch.optim.Adam(self.c_params, **adam)

    def latents(self, index):
        return self.uniform((self.batch, LATENT_DIM), index, "latents") * 2 - 1

    def critic_step(self, real, index):
        with torch.no_grad():
            fake = self.generator(self.latents(index))
        loss, _ = critic_loss(self.critic, real, fake, self.uniform((self.batch,), index, "loss"), self.alphas)
        _apply(self.c_opt, self.c_params, loss, self.clip_norm)
        return loss.detach()

    def generator_step(self, real):
        # The real half is off the gradient path (as the library's generator pass): no input
        # gradient is computed for it.
        with torch.no_grad():
            real_features = self.critic(real)
        loss = mmd2(real_features, self.critic(self.generator(self.latents("generator"))), self.alphas)
        _apply(self.g_opt, self.g_params, loss, self.clip_norm)
        return loss.detach()

    def step(self, real):
        self.losses = [self.critic_step(real, index) for index in range(self.critic_steps)]
        self.losses.append(self.generator_step(real))
        return self.losses[-1]


def real_batch(batch=64, image_size=32, seed=1):
    return torch.rand(batch, 1, image_size, image_size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def step_flops(batch=64):
    """Conv + matmul FLOPs of one step by PyTorch's ``FlopCounterMode`` (all backward orders)."""
    from torch.utils.flop_counter import FlopCounterMode

    step, real = MMDGPStep(batch), real_batch(batch)
    with FlopCounterMode(display=False) as counter:
        step.step(real)
    return counter.get_total_flops()


def make(compiled=False, batch=64):
    """A zero-argument callable: one step on a fixed real batch, eager or ``torch.compile``d."""
    step, real = MMDGPStep(batch), real_batch(batch)
    fn = torch.compile(step.step) if compiled else step.step
    return lambda: fn(real)


# --- the library's weights in the peer --------------------------------------------------------------

#: Keras variable name -> PyTorch parameter/buffer name.
_NAMES = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
          "moving_variance": "running_var"}


def _nhwc_to_nchw_order(height, width, channels):
    """Index map of a flattened NHWC tensor into the NCHW flattening: ``nchw = nhwc[order]``."""
    return np.arange(height * width * channels).reshape(height, width, channels).transpose(2, 0, 1).ravel()


def keras_state(module, arrays):
    """The peer's state-dict entries of arrays in the library's layout, keyed by Keras variable path.

    Conv kernels ``[kh, kw, c_in, c_out]`` and transposed-conv kernels ``[kh, kw, c_out, c_in]``
    both become ``[.., .., kh, kw]`` by ``(3, 2, 0, 1)``; dense kernels are transposed, and the
    features next to the NHWC reshape (the generator's dense layer and its BN) or flatten (the
    critic's dense layer) are reordered to NCHW. Works for weights and for their gradients.

    Args:
        module: a :class:`Generator` or :class:`Critic`.
        arrays: ``{"conv0/kernel": array, "dense_bn/gamma": array, …}`` (paths of a library
            ``dcgan_p1`` network's variables; unknown layers are skipped).

    Returns:
        ``{"convs.conv0.weight": tensor, …}``.
    """
    modules = dict(module.named_modules())
    generator = isinstance(module, Generator)
    if generator:
        order = _nhwc_to_nchw_order(module.start[1], module.start[2], module.start[0])
    else:
        channels = list(module.convs.values())[-1].out_channels
        side = int(round((module.dense.in_features // channels) ** 0.5))
        order = _nhwc_to_nchw_order(side, side, channels)
    state = {}
    for path, value in arrays.items():
        layer, kind = path.split("/")[-2:]
        name = next((p + layer for p in ("", "ups.", "convs.") if p + layer in modules), None)
        if name is None or kind not in _NAMES:
            continue
        value = np.asarray(value)
        if value.ndim == 4:
            value = value.transpose(3, 2, 0, 1)
        elif value.ndim == 2:
            value = (value[:, order] if generator else value[order]).T
        elif generator and layer in ("dense", "dense_bn"):
            value = value[order]
        state[f"{name}.{_NAMES[kind]}"] = torch.from_numpy(np.ascontiguousarray(value))
    return state


def load_keras_weights(module, model):
    """Copies a library ``dcgan_p1`` generator's or critic's weights into :class:`Generator`/:class:`Critic`."""
    state = keras_state(module, {v.path: v.numpy() for v in model.weights})
    missing = [k for k in module.load_state_dict(state, strict=False).missing_keys
               if not k.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"Expected a library dcgan_p1 {type(module).__name__.lower()} with the peer's "
                         f"layers. Received: `model={model.name}` without {missing}")
