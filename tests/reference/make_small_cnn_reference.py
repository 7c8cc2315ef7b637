"""A small Sequential CNN as a Keras user writes it, in the four Keras file formats, with a
float64 PyTorch reference of its predictions and of one training step (issue 14).

    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        layers.Conv2D(8, 3, activation="relu"), layers.BatchNormalization(),
        layers.MaxPooling2D(),
        layers.Conv2D(16, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
        layers.Flatten(), layers.Dropout(0.5), layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")

Seeded random weights (non-trivial BatchNormalization statistics) are written by
keras_model_writer.py as small_cnn.keras / .weights.h5 / _k2.h5 / _k2_weights.h5 (+ the two
config JSONs); a batch of 8 uint8 images with binary labels as parafine's HDF5 dataset
(small_cnn_data.h5: images uint8 [N,H,W,3], labels int32 [N]); and small_cnn_ref.h5:

  /input [N,32,32,3]   the images as ImageDataGenerator(rescale=1/255) gives them (float32
                       u8 * float32(1/255), stored as float64)
  /probs [N,1]         predict(): inference-mode forward, float64
  /float32_distance    (and attribute) max |probs(float32 torch) - probs(float64)|, the
                       scale of float32's own error on this network
  /train/loss          one fit() step's loss (binary cross-entropy of the logits, batch mean)
  /train/logits [N,1]  the step's logits (training-mode forward)
  /train/grads/<layer>/<var>, /train/weights/<layer>/<var>: gradients, weights after Adam
  /train/moving/<bn>/moving_mean, moving_variance: the BN moving statistics after the step
                       (momentum 0.99; the variance fed to the average Bessel-corrected as TF's
                       fused kernel and parafine do, DESIGN.md section 1), moving_variance_keras3
                       (Keras 3's ops.moments: the biased variance)
  /train/lr; attributes lr, beta1, beta2, epsilon, dropout_seed (0); keys 0..N-1.

The layers' maths is written from the Keras layer definitions (keras/src/layers/...):
Conv2D (channels_last, "valid"/"same" as TF pads), BatchNormalization (training: batch mean and
biased variance, then moving = moving * momentum + stat * (1 - momentum); inference: moving
statistics, epsilon 1e-3), MaxPooling2D (2x2 stride 2 valid), Flatten (NHWC order), Dropout
(kept values / (1 - rate); the mask from parafine's documented rule, dropout_keep below),
Dense, Adam (keras/src/optimizers/adam.py update_step). The graph interpreter here
(run_model) also runs Functional and nested models for make_nested_model_fixtures.py.
"""

import argparse
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

import keras_model_writer as kw

MASK64 = (1 << 64) - 1


# --------------------------------------------------------------------------------------------
# parafine's Dropout mask rule (Keras's RNG is backend-specific; parafine documents its own)
# --------------------------------------------------------------------------------------------

def splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & MASK64
    return h


def dropout_keep(layer_name, rate, key, count, seed_value=0):
    """[count] bool: element j (flat NHWC index in one sample) of the sample with key k is kept
    iff u >= rate, u = (bits >> 11) * 2^-53, bits = splitmix64(splitmix64(stream ^ k) ^ j),
    stream = splitmix64(seed_value ^ fnv1a64(layer name))."""
    stream = splitmix64(seed_value ^ fnv1a64(layer_name.encode("utf8")))
    per_sample = splitmix64(stream ^ key)
    keep = np.empty(count, bool)
    for j in range(count):
        u = (splitmix64(per_sample ^ j) >> 11) * 2.0 ** -53
        keep[j] = u >= rate
    return keep


# --------------------------------------------------------------------------------------------
# The forward pass of a keras_model_writer model, in PyTorch, NHWC throughout
# --------------------------------------------------------------------------------------------

class Run:
    """One forward: params {(layer, var): tensor}, training (fit) or not (predict), the
    samples' dropout keys; filled in: bn_stats {layer: (mean, biased var, n)} and logits (the
    last Dense's pre-activation)."""

    def __init__(self, params, training, keys=None):
        self.params, self.training, self.keys = params, training, keys
        self.bn_stats, self.logits = {}, None


def _same_pad(size, k, s):
    # TF "same": out = ceil(size / s); total padding split with the extra at the end.
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def _activation(name, z):
    if name in (None, "linear"):
        return z
    if name == "relu":
        return torch.relu(z)
    if name == "sigmoid":
        return torch.sigmoid(z)
    if name == "softmax":
        return torch.softmax(z, dim=-1)
    raise ValueError(f"no activation {name}")


def run_layer(L, ins, run, inference_only):
    """One Keras layer's call() on its inputs [N,...] (NHWC)."""
    o, P = L.options, run.params
    x = ins[0]
    training = run.training and not inference_only and L.trainable
    if L.cls == "Conv2D":
        k, st = kw._pair(o["kernel_size"]), kw._pair(o.get("strides", 1))
        xc = x.permute(0, 3, 1, 2)
        if o.get("padding", "valid") == "same":
            ph = _same_pad(x.shape[1], k[0], st[0])
            pw = _same_pad(x.shape[2], k[1], st[1])
            xc = F.pad(xc, (pw[0], pw[1], ph[0], ph[1]))
        w = P[(L.name, "kernel")].permute(3, 2, 0, 1)  # [kh,kw,cin,cout] -> [cout,cin,kh,kw]
        b = P.get((L.name, "bias"))
        y = F.conv2d(xc, w, b, stride=st).permute(0, 2, 3, 1)
        return _activation(o.get("activation", "linear"), y)
    if L.cls == "BatchNormalization":
        eps = o.get("epsilon", 1e-3)
        g, b = P[(L.name, "gamma")], P[(L.name, "beta")]
        if training:
            dims = tuple(range(x.dim() - 1))
            mean = x.mean(dim=dims)
            var = x.var(dim=dims, unbiased=False)
            run.bn_stats[L.name] = (mean, var, x.numel() // x.shape[-1])
        else:
            mean, var = P[(L.name, "moving_mean")], P[(L.name, "moving_variance")]
        return (x - mean) / torch.sqrt(var + eps) * g + b
    if L.cls == "MaxPooling2D":
        k = kw._pair(o.get("pool_size", 2))
        st = kw._pair(o.get("strides") or k)
        assert o.get("padding", "valid") == "valid"
        return F.max_pool2d(x.permute(0, 3, 1, 2), k, st).permute(0, 2, 3, 1)
    if L.cls == "GlobalAveragePooling2D":
        return x.mean(dim=(1, 2))
    if L.cls == "Flatten":
        return x.reshape(x.shape[0], -1)  # NHWC order, as Keras flattens channels_last
    if L.cls == "Dropout":
        if not training:
            return x
        rate = o["rate"]
        per = x[0].numel()
        masks = [dropout_keep(L.name, rate, k, per) for k in run.keys]
        m = torch.tensor(np.stack(masks).reshape(x.shape), dtype=x.dtype)
        return x * m / (1.0 - rate)
    if L.cls == "Dense":
        z = x @ P[(L.name, "kernel")]
        if (L.name, "bias") in P:
            z = z + P[(L.name, "bias")]
        run.logits = z
        return _activation(o.get("activation", "linear"), z)
    if L.cls == "Rescaling":
        return x * o["scale"] + o.get("offset", 0.0)
    if L.cls == "ReLU":
        y = torch.relu(x)
        return y if o.get("max_value") is None else torch.clamp(y, max=o["max_value"])
    if L.cls == "Activation":
        return _activation(o["activation"], x)
    if L.cls == "Add":
        return sum(ins[1:], ins[0])
    raise ValueError(f"no forward for {L.cls}")


def run_model(model, x, run, inference_only=False):
    """The model's output for input x [N,H,W,C]. A model called with training=False (the
    transfer-learning guide's base(x, training=False)) runs its layers in inference mode."""
    outs, prev = {}, None
    for L in model.layers:
        if L.cls == "InputLayer":
            y = x
        else:
            ins = [outs[prev]] if model.kind == "Sequential" else [outs[n] for n in L.inbound]
            if L.is_model:
                inner = inference_only or L.call_kwargs.get("training") is False
                y = run_model(L, ins[0], run, inner)
            else:
                y = run_layer(L, ins, run, inference_only)
        outs[L.name] = y
        prev = L.name
    return outs[model.output if model.kind == "Functional" else prev]


def torch_params(model, dtype, requires_grad=False):
    params = {}
    for owner, var, a in model.weights():
        t = torch.tensor(np.asarray(a, np.float32).astype(np.float64), dtype=dtype)
        if requires_grad and not var.startswith("moving_"):
            t.requires_grad_(True)
        params[(owner, var)] = t
    return params


def predict(model, x, dtype=torch.float64):
    with torch.no_grad():
        p = run_model(model, torch.tensor(x, dtype=dtype), Run(torch_params(model, dtype), False))
    return p.numpy().astype(np.float64)


def float32_distance(model, x):
    """max |float32 forward - float64 forward|: float32's own error on this network."""
    return float(np.max(np.abs(predict(model, x, torch.float32) - predict(model, x))))


# --------------------------------------------------------------------------------------------
# The small CNN
# --------------------------------------------------------------------------------------------

def uniform(rng, shape, limit):
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def glorot(rng, shape):
    # keras GlorotUniform: limit sqrt(6 / (fan_in + fan_out)), receptive field included
    rf = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return uniform(rng, shape, np.sqrt(6.0 / (shape[-2] * rf + shape[-1] * rf)))


def bn_weights(rng, c):
    return {"gamma": rng.uniform(0.6, 1.4, c).astype(np.float32),
            "beta": rng.uniform(-0.2, 0.2, c).astype(np.float32),
            "moving_mean": rng.uniform(-0.1, 0.3, c).astype(np.float32),
            "moving_variance": rng.uniform(0.02, 0.2, c).astype(np.float32)}


def small_cnn(rng):
    conv = lambda name, shape, **o: kw.Layer("Conv2D", name, o, weights={
        "kernel": glorot(rng, shape), "bias": uniform(rng, (shape[-1],), 0.05)})
    return kw.Model("Sequential", "sequential", [
        kw.Layer("InputLayer", "input_layer", shape=(32, 32, 3)),
        conv("conv2d", (3, 3, 3, 8), filters=8, kernel_size=3, activation="relu"),
        kw.Layer("BatchNormalization", "batch_normalization", weights=bn_weights(rng, 8)),
        kw.Layer("MaxPooling2D", "max_pooling2d"),
        conv("conv2d_1", (3, 3, 8, 16), filters=16, kernel_size=3, padding="same",
             activation="relu"),
        kw.Layer("MaxPooling2D", "max_pooling2d_1"),
        kw.Layer("Flatten", "flatten"),
        kw.Layer("Dropout", "dropout", {"rate": 0.5}),
        kw.Layer("Dense", "dense", {"units": 1, "activation": "sigmoid"},
                 weights={"kernel": glorot(rng, (784, 1)), "bias": np.array([0.1], np.float32)}),
    ])


def adam_step(w, g, lr, b1=0.9, b2=0.999, eps=1e-7, t=1):
    """keras/src/optimizers/adam.py update_step from m = v = 0: alpha = lr * sqrt(1 - b2^t) /
    (1 - b1^t); m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); w -= alpha m / (sqrt(v) + eps)."""
    m = (1 - b1) * g
    v = (1 - b2) * g * g
    alpha = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    return w - alpha * m / (np.sqrt(v) + eps)


def train_step(model, x, labels, lr):
    """One fit() step on the batch: training-mode forward (BN batch statistics, Dropout with
    keys 0..N-1), binary cross-entropy of the logits averaged over the batch, gradients, Adam,
    BN moving statistics."""
    params = torch_params(model, torch.float64, requires_grad=True)
    run = Run(params, True, keys=list(range(len(labels))))
    run_model(model, torch.tensor(x, dtype=torch.float64), run)
    z = run.logits[:, 0]
    y = torch.tensor(labels, dtype=torch.float64)
    # sigmoid cross-entropy from logits: softplus(z) - y z, the batch mean
    loss = (F.softplus(z) - y * z).mean()
    loss.backward()
    out = {"loss": float(loss), "logits": run.logits.detach().numpy(), "grads": {},
           "weights": {}, "moving": {}}
    for (owner, var), t in params.items():
        if var.startswith("moving_"):
            continue
        g = t.grad.numpy()
        out["grads"][(owner, var)] = g
        out["weights"][(owner, var)] = adam_step(t.detach().numpy(), g, lr)
    for name, (mean, var, n) in run.bn_stats.items():
        mm = params[(name, "moving_mean")].numpy()
        mv = params[(name, "moving_variance")].numpy()
        mean, var = mean.detach().numpy(), var.detach().numpy()
        out["moving"][name] = {
            "moving_mean": mm * 0.99 + mean * 0.01,
            "moving_variance": mv * 0.99 + var * n / (n - 1) * 0.01,
            "moving_variance_keras3": mv * 0.99 + var * 0.01}
    return out


def training_loss(model, x, labels, overrides):
    """The fit step's loss with some weights replaced ({(layer, var): array}), float64."""
    params = torch_params(model, torch.float64)
    for k, a in overrides.items():
        params[k] = torch.tensor(a, dtype=torch.float64)
    run = Run(params, True, keys=list(range(len(labels))))
    with torch.no_grad():
        run_model(model, torch.tensor(x, dtype=torch.float64), run)
    z, y = run.logits[:, 0], torch.tensor(labels, dtype=torch.float64)
    return float((F.softplus(z) - y * z).mean())


def check_gradients(model, x, labels, grads, h=1e-6):
    """Central differences of the loss against the autograd gradients, for one element of
    every variable: the reference's own consistency (max relative error returned)."""
    worst = 0.0
    for (owner, var), g in grads.items():
        w = {(o, v): np.asarray(a, np.float64) for o, v, a in model.weights()}[(owner, var)]
        i = np.unravel_index(np.argmax(np.abs(g)), g.shape)
        plus, minus = w.copy(), w.copy()
        plus[i] += h
        minus[i] -= h
        fd = (training_loss(model, x, labels, {(owner, var): plus}) -
              training_loss(model, x, labels, {(owner, var): minus})) / (2 * h)
        worst = max(worst, abs(fd - g[i]) / max(abs(g[i]), 1e-8))
    assert worst < 1e-5, f"finite differences disagree with autograd: {worst}"
    return worst


def write_dataset(path, images, labels):
    """parafine's HDF5 dataset (DESIGN.md section 4): images uint8 [N,H,W,3], labels [N]."""
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images)
        f.create_dataset("labels", data=labels.astype(np.int32))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-3)
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    model = small_cnn(rng)
    prefix = os.path.join(args.out_dir, "small_cnn")

    images = rng.integers(0, 256, size=(8, 32, 32, 3), dtype=np.uint8)
    labels = np.array([0, 1, 1, 0, 1, 0, 0, 1], np.int32)
    write_dataset(prefix + "_data.h5", images, labels)
    # ImageDataGenerator(rescale=1/255).standardize: float32 x *= rescale
    x = (images.astype(np.float32) * np.float32(1.0 / 255)).astype(np.float64)
    # The Dense bias centres predict()'s logits on this batch (probabilities on both sides of
    # 0.5 make a wrong sign or offset visible).
    z = np.log(predict(model, x)) - np.log1p(-predict(model, x))
    dense = model.layers[-1].weights
    dense["bias"] = (dense["bias"] - np.float32(np.mean(z))).astype(np.float32)
    kw.write_all(prefix, model)
    n_vars = kw.self_check(prefix, model)

    probs = predict(model, x)
    dist = float32_distance(model, x)
    step = train_step(model, x, labels, args.lr)
    fd_err = check_gradients(model, x, labels, step["grads"])
    kept = np.mean(dropout_keep("dropout", 0.5, 0, 784))
    with h5py.File(prefix + "_ref.h5", "w") as f:
        f.create_dataset("images", data=images)
        f.create_dataset("labels", data=labels)
        f.create_dataset("input", data=x)
        f.create_dataset("probs", data=probs)
        f.attrs["float32_distance"] = dist
        f.create_dataset("float32_distance", data=dist)  # also as a dataset, for readers of
        f.create_dataset("train/lr", data=args.lr)       # datasets only
        f.attrs.update({"lr": args.lr, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-7,
                        "dropout_seed": 0})
        f.create_dataset("train/loss", data=step["loss"])
        f.create_dataset("train/logits", data=step["logits"])
        for (owner, var), g in step["grads"].items():
            f.create_dataset(f"train/grads/{owner}/{var}", data=g)
            f.create_dataset(f"train/weights/{owner}/{var}", data=step["weights"][(owner, var)])
        for name, stats in step["moving"].items():
            for k, v in stats.items():
                f.create_dataset(f"train/moving/{name}/{k}", data=v)
    print(f"small_cnn: {n_vars} variables equal in the four formats; probs "
          f"{np.round(probs[:, 0], 4).tolist()}; float32 vs float64 max |dp| {dist:.3g}; "
          f"train loss {step['loss']:.6f}; finite differences vs autograd {fd_err:.2g}; "
          f"dropout keeps {kept:.3f} of sample 0")


if __name__ == "__main__":
    sys.exit(main())
