"""GANLoss objects (the model's contract) vs NumPy float64 references on a linear critic."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmd_keras import kernels
from mmd_keras import losses
from mmd_keras import rng as rng_lib
from references import close, np_bounded_matrices, np_expectations, np_mmd2, np_rbf, np_witness_gradients

SHAPE = (2, 2, 1)
D = int(np.prod(SHAPE))
RBF1 = {"kernel": kernels.get("rbf", sigmas=(1.0,))}
OUTPUT_DIMS = {"mmd": 3, "repulsive": 3, "rep_b": 3, "mmd_rbf_b": 3, "cramer": 3, "gcmmd": 2, "smmd": 3}


def linear_keras_critic(w):
    """Functional critic h(x) = W vec(x): Input -> Flatten -> Dense(s, no bias)."""
    inputs = keras.Input(SHAPE)
    dense = keras.layers.Dense(w.shape[0], use_bias=False)
    critic = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    dense.kernel.assign(w.T.astype(np.float32))
    return critic


def make_batches(rng, b=5):
    real = rng.normal(size=(b,) + SHAPE)
    fake = rng.normal(size=(b,) + SHAPE) * 0.8 + 0.4
    fake_2 = rng.normal(size=(b,) + SHAPE) * 0.8 + 0.4
    return real, fake, fake_2


def alpha_for(seed, b):
    """The documented RNG of the interpolation weights, mmd_keras.rng.uniform01 (checked in test_rng)."""
    return rng_lib.uniform01([b], tf.constant(seed, tf.int32)).numpy().astype(np.float64)


def reference(name, w, real, fake, fake_2, seed):
    """(critic_loss, generator_loss) in float64 for the loss ``name`` with default parameters."""
    b = len(real)
    flat = lambda t: t.reshape(len(t), -1)  # noqa: E731
    hx, hy, hy2 = flat(real) @ w.T, flat(fake) @ w.T, flat(fake_2) @ w.T
    alpha = alpha_for(seed, b)
    hat = real + alpha[:, None, None, None] * (fake - real)
    w_sq = (w**2).sum()
    mmd2 = np_mmd2(hx, hy, "unbiased")
    e = np_expectations(np_rbf(hx, hx), np_rbf(hx, hy), np_rbf(hy, hy), "unbiased")
    if name == "mmd":
        g = np_witness_gradients(w, real, fake, hat, 1.0)
        return -mmd2 + ((np.linalg.norm(g, axis=1) - 1) ** 2).mean(), mmd2
    if name == "repulsive":
        return e[0] - e[2], mmd2
    if name in ("rep_b", "mmd_rbf_b"):
        lam = 1.0 if name == "rep_b" else -1.0
        eb = np_expectations(*np_bounded_matrices(hx, hy, 0.25, 4.0, "repulsive" if lam > 0 else "attractive"),
                             "unbiased")
        return lam * eb[0] - (lam - 1) * eb[1] - eb[2], mmd2
    if name == "smmd":
        return -mmd2 / (1 + 10 * w_sq), mmd2 / (1 + 10 * w_sq)
    if name == "swgan":
        value = (hx.mean() - hy.mean()) / np.sqrt(1 + 10 * ((hx**2).mean() + w_sq))
        return -value, value
    if name == "rep_gp":
        return (e[0] - e[2] - 1) / (1 + 0.1 * w_sq), mmd2
    if name == "wgan_gp":
        return hy.mean() - hx.mean() + 10 * (np.sqrt(w_sq) - 1) ** 2, -hy.mean()
    if name == "hinge":
        return np.maximum(0, 1 - hx).mean() + np.maximum(0, 1 + hy).mean(), -hy.mean()
    if name == "non_saturating":
        sp = lambda t: np.log1p(np.exp(t))  # noqa: E731
        return sp(-hx).mean() + sp(hy).mean(), sp(-hy).mean()
    if name == "cramer":
        norm = lambda t: np.sqrt((t**2).sum(1) + 1e-5)  # noqa: E731
        f = lambda h: norm(h - hy2) - norm(h)  # noqa: E731
        hh = flat(hat) @ w.T
        grad = ((hh - hy2) / norm(hh - hy2)[:, None] - hh / norm(hh)[:, None]) @ w
        gp = ((np.linalg.norm(grad, axis=1) - 1) ** 2).mean()
        return f(hy).mean() - f(hx).mean() + 10 * gp, (norm(hx - hy) + norm(hx - hy2) - norm(hy - hy2)).mean()
    if name == "sobolev":
        ipm = hx.mean() - hy.mean()
        omega = w_sq
        return -(ipm - 0.5 * 1e-6 * (omega - 1) ** 2), ipm
    raise KeyError(name)


NAMES = sorted(set(losses.LOSSES) - {"gcmmd"})


@pytest.mark.parametrize("name", NAMES)
def test_every_loss_matches_numpy_reference(rng, name):
    s = OUTPUT_DIMS.get(name, 1)
    w = rng.normal(size=(s, D)) * 0.6
    real, fake, fake_2 = make_batches(rng)
    params = RBF1 if name == "mmd" else {}
    loss = losses.get(name, **params)
    assert loss.name == name
    assert loss.required_output_dim in (None, 1)
    critic = linear_keras_critic(w)
    seed = [3, 7]
    # traced: every loss runs under tf.function (the eager path is covered by the tests below)
    out = tf.function(lambda seed: loss(critic, tf.constant(real, tf.float32), tf.constant(fake, tf.float32),
                                        seed=seed,
                                        fake_images_2=tf.constant(fake_2, tf.float32)
                                        if loss.num_fake_batches == 2 else None))(tf.constant(seed))
    critic_ref, generator_ref = reference(name, w, real, fake, fake_2, seed)
    close(out.critic_loss, critic_ref, rtol=2e-5)
    close(out.generator_loss, generator_ref, rtol=2e-5)
    assert out.critic_loss.dtype == tf.float32 and out.generator_loss.dtype == tf.float32


def test_unequal_batch_sizes(rng):
    w = rng.normal(size=(3, D))
    real, fake = rng.normal(size=(6,) + SHAPE), rng.normal(size=(4,) + SHAPE)
    out = losses.get("repulsive", lam=2.0)(linear_keras_critic(w), tf.constant(real, tf.float32),
                                           tf.constant(fake, tf.float32), seed=[0, 0])
    hx, hy = real.reshape(6, -1) @ w.T, fake.reshape(4, -1) @ w.T
    e = np_expectations(np_rbf(hx, hx), np_rbf(hx, hy), np_rbf(hy, hy), "unbiased")
    close(out.critic_loss, 2 * e[0] - e[1] - e[2])


def test_modes_penalties_and_seeds(rng):
    w = rng.normal(size=(3, D))
    real, fake, _ = (tf.constant(t, tf.float32) for t in make_batches(rng))
    critic = linear_keras_critic(w)
    loss = losses.get("mmd", **RBF1)
    both = loss(critic, real, fake, seed=[1, 2], mode="both")
    crit = loss(critic, real, fake, seed=[1, 2], mode="critic")
    gen = loss(critic, real, fake, seed=[1, 2], mode="generator")
    close(both.critic_loss, float(crit.critic_loss))
    assert "gradient_penalty" in both.metrics and "gradient_penalty" not in gen.metrics
    close(gen.generator_loss, float(both.generator_loss))
    close(gen.critic_loss, -float(both.metrics["mmd2"]))  # no penalty in generator mode
    again = loss(critic, real, fake, seed=[1, 2], mode="critic")
    other = loss(critic, real, fake, seed=[5, 9], mode="critic")
    assert float(again.critic_loss) == float(crit.critic_loss)
    assert abs(float(other.metrics["gradient_penalty"]) - float(crit.metrics["gradient_penalty"])) > 1e-6


def test_feature_gather_hook_applies_to_real_and_fake(rng):
    w = rng.normal(size=(3, D))
    real, fake, _ = make_batches(rng)
    gather = lambda t: tf.concat([t, 2.0 * t], axis=0)  # noqa: E731
    loss = losses.get("repulsive", lam=0.5)
    out = loss(linear_keras_critic(w), tf.constant(real, tf.float32), tf.constant(fake, tf.float32), seed=[0, 1],
               feature_gather=gather)
    hx, hy = real.reshape(5, -1) @ w.T, fake.reshape(5, -1) @ w.T
    hx, hy = np.concatenate([hx, 2 * hx]), np.concatenate([hy, 2 * hy])
    e = np_expectations(np_rbf(hx, hx), np_rbf(hx, hy), np_rbf(hy, hy), "unbiased")
    close(out.critic_loss, 0.5 * e[0] + 0.5 * e[1] - e[2])
    close(out.generator_loss, np_mmd2(hx, hy, "unbiased"))


def test_l2_activation_penalty_through_functional_critic(rng):
    inputs = keras.Input(SHAPE)
    h1 = keras.layers.Dense(4, activation="tanh")(keras.layers.Flatten()(inputs))
    out = keras.layers.Dense(3)(h1)
    critic = keras.Model(inputs, out)
    real, fake, _ = make_batches(rng)
    loss = losses.get("repulsive", activation_penalty_weight=0.5)
    result = loss(critic, tf.constant(real, tf.float32), tf.constant(fake, tf.float32), seed=[0, 0])
    w1, b1 = (v.numpy().astype(np.float64) for v in critic.layers[2].weights)
    w2, b2 = (v.numpy().astype(np.float64) for v in critic.layers[3].weights)
    penalty = 0.0
    for images in (real, fake):
        a1 = np.tanh(images.reshape(5, -1) @ w1 + b1)
        a2 = a1 @ w2 + b2
        penalty += (a1**2).mean() + (a2**2).mean()
    e = np_expectations(np_rbf(a2_x := np.tanh(real.reshape(5, -1) @ w1 + b1) @ w2 + b2, a2_x),
                        np_rbf(a2_x, a2_y := np.tanh(fake.reshape(5, -1) @ w1 + b1) @ w2 + b2),
                        np_rbf(a2_y, a2_y), "unbiased")
    close(result.metrics["activation_penalty"], penalty)
    close(result.critic_loss, e[0] - e[2] + 0.5 * penalty, rtol=2e-5)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_low_precision_critic_gives_float32_losses(rng, policy):
    w = rng.normal(size=(1, D)) * 0.5
    real, fake, _ = make_batches(rng)
    keras.mixed_precision.set_global_policy(policy)
    critic = linear_keras_critic(w)
    out = losses.get("smmd")(critic, tf.constant(real, tf.float32), tf.constant(fake, tf.float32), seed=[0, 0])
    keras.mixed_precision.set_global_policy("float32")
    assert out.critic_loss.dtype == tf.float32 and out.generator_loss.dtype == tf.float32
    critic_ref, generator_ref = reference("smmd", w, real, fake, fake, [0, 0])
    close(out.generator_loss, generator_ref, rtol=5e-2, atol=1e-3)


def test_sobolev_state_in_and_out(rng):
    w = rng.normal(size=(1, D)) * 0.5
    real, fake, _ = (tf.constant(t, tf.float32) for t in make_batches(rng))
    loss = losses.get("sobolev", rho=0.5)
    assert loss.variables == [loss.multiplier] and float(loss.multiplier) == 0.0
    out = loss(linear_keras_critic(w), real, fake, seed=[0, 0], mode="critic")
    omega = (w**2).sum()
    close(out.state_updates["multiplier"], -0.5 * (1 - omega))
    loss.apply_state_updates(out.state_updates)
    close(loss.multiplier.numpy(), -0.5 * (1 - omega))
    out2 = loss(linear_keras_critic(w), real, fake, seed=[0, 0], mode="critic")
    ipm = float(out2.metrics["ipm"])
    lam_l = -0.5 * (1 - omega)
    close(out2.critic_loss, -(ipm + lam_l * (1 - omega) - 0.25 * (omega - 1) ** 2), rtol=2e-5)
    smmd = losses.get("smmd", coefficient=3.0)
    assert smmd.variables == [smmd.coefficient] and float(smmd.coefficient) == 3.0


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
def test_config_round_trip_and_gradients_flow(rng, name):
    loss = losses.get(name)
    clone = losses.get(losses.serialize(loss))
    assert type(clone) is type(loss) and clone.get_config() == loss.get_config()
    s = OUTPUT_DIMS.get(name, 1)
    critic = linear_keras_critic(rng.normal(size=(s, D)) * 0.5)
    real, fake, fake_2 = (tf.constant(t, tf.float32) for t in make_batches(rng, b=4))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(fake)
        out = loss(critic, real, fake, seed=[0, 1], fake_images_2=fake_2 if loss.num_fake_batches == 2 else None)
    grad_w = tape.gradient(out.critic_loss, critic.trainable_variables)[0]
    grad_fake = tape.gradient(out.generator_loss, fake)
    assert grad_w is not None and float(tf.norm(grad_w)) > 0
    assert grad_fake is not None and float(tf.norm(grad_fake)) > 0


@pytest.mark.slow
def test_jit_compile_matches_eager(rng):
    """Witness GP (nested tapes), Jacobian scale and RBF-B under XLA, with critic gradients."""
    real, fake, _ = (tf.constant(t, tf.float32) for t in make_batches(rng, b=4))
    cases = [(losses.get(name, **params), linear_keras_critic(rng.normal(size=(OUTPUT_DIMS.get(name, 1), D)) * 0.5))
             for name, params in (("mmd", RBF1), ("smmd", {}), ("rep_b", {}))]

    def run(seed):
        results = []
        for loss, critic in cases:
            with tf.GradientTape() as tape:
                out = loss(critic, real, fake, seed=seed, mode="both")
            results.append((out.critic_loss, out.generator_loss,
                            tape.gradient(out.critic_loss, critic.trainable_variables)[0]))
        return results

    compiled = tf.function(run, jit_compile=True)(tf.constant([4, 5]))
    for got, want in zip(compiled, run(tf.constant([4, 5]))):
        for g, w in zip(got, want):
            close(g, w.numpy(), rtol=1e-4, atol=1e-6)


def test_objective_bad_inputs(rng):
    real = tf.zeros((4,) + SHAPE)
    critic = linear_keras_critic(np.ones((3, D)))
    with pytest.raises(ValueError, match=r"Expected `loss` to be one of \[.*'mmd'.*'wgan_gp'"):
        losses.get("mmd_gp")
    with pytest.raises(ValueError, match="Invalid parameters"):
        losses.get("mmd", lam=1.0)
    with pytest.raises(ValueError, match="mode"):
        losses.get("mmd")(critic, real, real, seed=[0, 0], mode="discriminator")
    with pytest.raises(ValueError, match="output dimension 1"):
        losses.get("swgan")(critic, real, real, seed=[0, 0])
    with pytest.raises(ValueError, match="fake_images_2"):
        losses.get("cramer")(critic, real, real, seed=[0, 0])
    with pytest.raises(ValueError, match="fake_images_2"):
        losses.get("mmd")(critic, real, real, seed=[0, 0], fake_images_2=real)
    with pytest.raises(ValueError, match="seed"):
        losses.get("mmd")(critic, real, real, seed=[0, 0, 1])
    with pytest.raises(ValueError, match="fake_images"):
        losses.get("mmd")(critic, real, tf.zeros((4, 3, 3, 1)), seed=[0, 0])
    with pytest.raises(ValueError, match="functional keras.Model"):
        losses.get("mmd", activation_penalty_weight=1.0)(lambda t: critic(t), real, real, seed=[0, 0])
    with pytest.raises(ValueError, match="gradient_penalty_weight"):
        losses.get("wgan_gp", gradient_penalty_weight=-1.0)
    with pytest.raises(ValueError, match="distance-based"):
        losses.get("rep_b", kernel="dot")
    with pytest.raises(ValueError, match="estimator"):
        losses.get("mmd", estimator="fast")
    assert losses.get(losses.get("hinge")).name == "hinge"


# ---- issue 14 item 1: which tensors the L2 activation penalty takes ----------------------------
def _leaky(n):
    """Keras's names of the first n LeakyReLU layers after keras.backend.clear_session()."""
    return ["leaky_re_lu"] + [f"leaky_re_lu_{i}" for i in range(1, n)]


# Per architecture: the LeakyReLU after every conv/dense/residual sum (paper 1, footnote 19:
# each layer's activation after its nonlinearity) and the final representation "features",
# once each. Never the conv/dense pre-activations, pooling, the sum-pool or Flatten.
PENALIZED = {
    "dcgan_s1": _leaky(7) + ["features"],  # after conv0..conv6
    "dcgan_s2": _leaky(9) + ["features"],  # after conv0..conv8
    "sngan": _leaky(7) + ["features"],  # after conv0..conv6
    "resnet": _leaky(10) + ["features"],  # down0_conv0, add, down1_conv0, add_1, ..., down4_conv0, add_4
    "dcgan_p1": _leaky(4) + ["features"],  # after conv0..conv3
    "celeba160": _leaky(5) + ["features"],  # after conv0..conv4
    "mlp": _leaky(3) + ["features"],  # after dense0..dense2
    "small": _leaky(1) + ["features"],  # after conv0
}
CRITIC_SIZES = {"dcgan_s1": 16, "dcgan_s2": 32, "sngan": 16, "resnet": 32, "dcgan_p1": 16, "celeba160": 32,
                "small": 8}


def test_activation_layers_of_every_library_critic_are_the_hand_listed_ones():
    from mmd_keras import networks

    assert set(PENALIZED) == set(networks.ARCHITECTURES)
    for arch in networks.ARCHITECTURES:
        keras.backend.clear_session()
        kwargs = {} if arch == "mlp" else {"image_size": CRITIC_SIZES[arch], "channels": 3}
        critic = networks.build_critic(arch, **kwargs)
        assert losses.activation_layers(critic) == PENALIZED[arch], arch


def test_l2_activation_penalty_of_the_paper1_critic_matches_numpy(rng):
    from mmd_keras import networks

    keras.backend.clear_session()
    critic = networks.build_critic("dcgan_p1", image_size=16, channels=1, widths=(2, 3, 3, 4), output_dim=3)
    real = rng.uniform(-1, 1, size=(4, 16, 16, 1)).astype(np.float32)
    fake = rng.uniform(-1, 1, size=(4, 16, 16, 1)).astype(np.float32)
    loss = losses.get("mmd", kernel=kernels.get("rq_dot"), gradient_penalty_weight=0.0, activation_penalty_weight=1.0)
    out = loss(critic, real, fake, seed=[0, 0], mode="critic")
    # Reference: the hand-listed tensors read off the critic, squared and averaged in NumPy.
    names = ["leaky_re_lu", "leaky_re_lu_1", "leaky_re_lu_2", "leaky_re_lu_3", "features"]
    probe = keras.Model(critic.inputs, [critic.get_layer(n).output for n in names])
    expected = 0.0
    for images in (real, fake):
        for a in probe(images):
            a = np.asarray(a, np.float64)
            expected += (a.reshape(len(a), -1) ** 2).mean()
    close(out.metrics["activation_penalty"], expected, rtol=1e-5)


def test_l2_activation_penalty_of_a_linear_critic_is_its_output_alone(rng):
    # No nonlinearity at all: only the final representation is penalized.
    w = rng.normal(size=(3, D))
    real, fake, _ = make_batches(rng)
    critic = linear_keras_critic(w)
    assert losses.activation_layers(critic) == [critic.layers[-1].name]
    out = losses.get("repulsive", activation_penalty_weight=1.0)(
        critic, tf.constant(real, tf.float32), tf.constant(fake, tf.float32), seed=[0, 0], mode="critic")
    expected = sum(((t.reshape(len(t), -1) @ w.T) ** 2).mean() for t in (real, fake))
    close(out.metrics["activation_penalty"], expected)


def test_subclass_contract_gives_exactly_the_requested_fields(rng):
    """A subclass declares what it needs; CriticPass carries those fields and None elsewhere."""
    seen = {}

    class Probe(losses.GANLoss):
        name = "probe"
        jacobian = "critic"
        needs_fake_gradients = True

        def _loss_terms(self, p, mode):
            seen[mode] = p
            return tf.constant(0.0), tf.constant(0.0), {}, {}

    w = rng.normal(size=(2, D))
    real, fake, _ = (tf.constant(t, tf.float32) for t in make_batches(rng))
    critic = linear_keras_critic(w)
    Probe()(critic, real, fake, seed=[0, 0], mode="critic")
    Probe()(critic, real, fake, seed=[0, 0], mode="generator")
    critic_pass, generator_pass = seen["critic"], seen["generator"]
    # h = Wx: ‖J_h(x)‖²_F = ‖W‖²_F for every sample; ∇ Σ_k h_k(y) = Σ_k W_k.
    close(critic_pass.real_jacobian_sq, np.full(5, (w**2).sum()))
    close(critic_pass.fake_gradient_sq, np.full(5, (w.sum(0) ** 2).sum()))
    assert critic_pass.real_jacobian is None and critic_pass.gradient_penalty is None
    assert generator_pass.real_jacobian_sq is None and generator_pass.fake_gradient_sq is None


def _backprop_input_batches(function, *specs):
    """Batch sizes of every convolution input-gradient op in the graph of ``function``."""
    graph = tf.function(function).get_concrete_function(*specs).graph
    return sorted(int(op.outputs[0].shape[0]) for op in graph.get_operations()
                  if op.type == "Conv2DBackpropInput")


@pytest.mark.parametrize("name", ["mmd", "repulsive", "cramer"])
def test_generator_mode_matches_the_stacked_pass_and_skips_the_real_input_gradient(name):
    from mmd_keras import networks

    critic = networks.build_critic("small", image_size=16, channels=1, output_dim=4, sn_mode="pico")
    loss = losses.get(name)
    gen = np.random.default_rng(3)
    real = tf.constant(gen.uniform(-1, 1, (6, 16, 16, 1)), tf.float32)
    fakes = [tf.constant(gen.uniform(-1, 1, (6, 16, 16, 1)), tf.float32) for _ in range(loss.num_fake_batches)]
    start = [v.numpy() for v in critic.variables]

    def generator_loss(mode):
        for v, value in zip(critic.variables, start):
            v.assign(value)
        with tf.GradientTape() as tape:
            tape.watch(fakes)
            out = loss(critic, real, fakes[0], seed=[1, 2], mode=mode,
                       fake_images_2=fakes[1] if len(fakes) > 1 else None)
        gradients = tape.gradient(out.generator_loss, fakes)
        return out.generator_loss.numpy(), [g.numpy() for g in gradients], [v.numpy() for v in critic.variables]

    # "both" is the one stacked pass of paper 3's joint update: the same critic state, features
    # and generator loss; the spectral-norm vectors advance once in either.
    value, gradients, state = generator_loss("generator")
    value_both, gradients_both, state_both = generator_loss("both")
    np.testing.assert_allclose(value, value_both, rtol=1e-4, atol=1e-7)  # float32, other batch shapes
    for g, g_both in zip(gradients, gradients_both):
        np.testing.assert_allclose(g, g_both, rtol=1e-4, atol=1e-4 * np.abs(g_both).max())
    for s, s_both in zip(state, state_both):
        np.testing.assert_allclose(s, s_both, rtol=1e-6, atol=1e-7)
    # The generator's gradient graph computes the critic's input gradients for the fakes only.
    spec = tf.TensorSpec(real.shape, tf.float32)

    def gradient_of_generator_loss(real_images, fake_images):
        with tf.GradientTape() as tape:
            tape.watch(fake_images)
            out = loss(critic, real_images, fake_images, seed=[1, 2], mode="generator",
                       fake_images_2=fake_images if len(fakes) > 1 else None)
        return tape.gradient(out.generator_loss, fake_images)

    # (Batch-1 ops are PICO's power iteration: its adjoint is a transposed convolution.)
    batches = [b for b in _backprop_input_batches(gradient_of_generator_loss, spec, spec) if b > 1]
    assert batches and set(batches) == {6 * len(fakes)}, batches
