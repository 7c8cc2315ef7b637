"""The file layouts shared by every float64 PyTorch reference in tests/reference/.

make_resnet50_reference.py (ResNet50/101/152), make_vgg_reference.py, make_inception_v3_reference.py
and make_mobilenet_v2_reference.py each build their own network; what they write, and the
small pieces around it, is one thing and lives here:

* ``save_keras_weights``: the tf.keras ``model.save_weights('m.h5')`` (legacy h5) layout the
  C++ loader reads: root attributes layer_names / backend / keras_version, one group per
  layer with a ``weight_names`` attribute and ``<layer>/<var>:0`` float32 datasets.
* ``save_reference``: the schema tests/test_resnet50_reference.cpp reads: /input (NHWC
  float32), /labels (int32), /logits, /probs, /pooled, /base_output (NHWC), /loss, /boundary
  (NHWC) and attribute boundary_layer, /grads/<layer>/<var>, /moving/<layer>/moving_{mean,
  variance} (all float64), attribute trainable_layers, and every command-line option as an
  attribute (booleans as 0/1).
* ``make_inputs``: the seeded input batch and labels; layout conversions; the seeded
  glorot-uniform draw; float32 weights -> float64 torch leaves; the BN calibration callback;
  the categorical cross-entropy; ``train_step``, the frame of one training step (loss,
  backward, gradients, moving statistics, the dict save_reference writes) around the
  script's own forward pass and moving-statistics update.

Nothing here draws differently from the code it replaced: the fixtures are bitwise the same.

Imported from the scripts' own directory (they run as scripts, with sys.path[0] there).
"""

import h5py
import numpy as np
import torch
import torch.nn.functional as F

KERAS_VERSION = b"2.11.0"
HEAD_LAYER_NAMES = ["global_average_pooling2d", "dense", "dense_1"]


# --------------------------------------------------------------------------
# HDF5 files
# --------------------------------------------------------------------------

def bytes_array(names):
    """A list of str -> fixed-length bytes array, as Keras writes name lists (empty: S1)."""
    if not names:
        return np.array([], dtype="S1")
    return np.array([n.encode("utf8") for n in names])


def save_keras_weights(path, layers, weights, var_names):
    """Layout of tf.keras model.save_weights('m.h5') (legacy h5 format).

    layers: objects with .name and .kind, in base.layers order then the head;
    weights: {layer: {var: array}}; var_names: {kind: [var, ...]} in Keras's variable order."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = bytes_array([L.name for L in layers])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = KERAS_VERSION
        for L in layers:
            g = f.create_group(L.name)
            vars_ = weights.get(L.name, {})
            vnames = [v for v in var_names.get(L.kind, []) if v in vars_]
            wnames = [f"{L.name}/{v}:0" for v in vnames]
            g.attrs["weight_names"] = bytes_array(wnames)
            for wn, v in zip(wnames, vnames):
                g.create_dataset(wn, data=vars_[v].astype(np.float32))


def save_reference(path, args, x_nhwc, labels, result, trainable_order):
    """The reference file of one training step (schema in this module's docstring).

    result: the dict of train-step results (logits, probs, loss, pooled, base_output,
    boundary_name, boundary, grads {layer: {var: array}}, moving {layer: (mean, var)})."""
    with h5py.File(path, "w") as f:
        f.create_dataset("input", data=x_nhwc.astype(np.float32))
        f.create_dataset("labels", data=labels.astype(np.int32))
        for key in ("logits", "probs", "pooled", "base_output"):
            f.create_dataset(key, data=result[key].astype(np.float64))
        f.create_dataset("loss", data=np.float64(result["loss"]))
        # The activation entering the trainable suffix's first block, so a test can run the
        # suffix alone from it (NHWC float64); its layer name is the attribute boundary_layer.
        f.create_dataset("boundary", data=result["boundary"].astype(np.float64))
        f.attrs["boundary_layer"] = np.array([result["boundary_name"].encode()], dtype="S")
        for lname, vars_ in result["grads"].items():
            for vname, g in vars_.items():
                f.create_dataset(f"grads/{lname}/{vname}", data=g.astype(np.float64))
        for lname, (mm, mv) in result["moving"].items():
            f.create_dataset(f"moving/{lname}/moving_mean", data=mm.astype(np.float64))
            f.create_dataset(f"moving/{lname}/moving_variance", data=mv.astype(np.float64))
        f.attrs["trainable_layers"] = bytes_array(trainable_order)
        for k, v in vars(args).items():
            f.attrs[k] = v if not isinstance(v, bool) else int(v)


# --------------------------------------------------------------------------
# Inputs and layouts
# --------------------------------------------------------------------------

def make_inputs(rng, batch, size, classes, scale=50.0, distinct_labels=True):
    """x [batch, size, size, 3] float32 uniform in (-scale, scale), then labels [batch] int32.

    distinct_labels: if every label came out equal, the second is moved to the next class
    (so the loss is not trivially minimised by one class)."""
    x = (rng.uniform(-1.0, 1.0, size=(batch, size, size, 3)) * scale).astype(np.float32)
    labels = rng.integers(0, classes, size=batch)
    if distinct_labels and batch > 1 and classes > 1 and np.all(labels == labels[0]):
        labels[1] = (labels[0] + 1) % classes
    return x, labels.astype(np.int32)


def nhwc_to_nchw(x):
    """numpy [N,H,W,C] -> contiguous float64 torch [N,C,H,W]."""
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)).astype(np.float64))


def nchw_to_nhwc(t):
    """torch [N,C,H,W] -> contiguous numpy [N,H,W,C] (detached)."""
    return t.detach().permute(0, 2, 3, 1).contiguous().numpy()


# --------------------------------------------------------------------------
# Weights and training-step pieces
# --------------------------------------------------------------------------

def glorot_uniform(rng, shape, fan_in, fan_out):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def to_torch_params(layers, weights, trainable, trainable_vars):
    """float32 numpy weights -> float64 torch leaves (same layouts).

    Only the variables trainable_vars[kind] of the layers in `trainable` get requires_grad."""
    params = {}
    for L in layers:
        if L.name not in weights:
            continue
        params[L.name] = {}
        for vname, arr in weights[L.name].items():
            t = torch.from_numpy(arr.astype(np.float64))
            if L.name in trainable and vname in trainable_vars[L.kind]:
                t.requires_grad_(True)
            params[L.name][vname] = t
    return params


def bn_calibration_callback(weights, params, rng):
    """The `calibrate` callback of the scripts' forward(): sets a BN's moving statistics from
    its input x [N,C,H,W]: moving_mean = batch mean, moving_variance = biased batch variance
    times U(0.8, 1.2) (one draw per channel), rounded to float32, and the rounded values are
    what later layers see."""
    def callback(name, x):
        mean = x.mean(dim=(0, 2, 3)).numpy()
        var = x.var(dim=(0, 2, 3), unbiased=False).numpy()
        var = var * rng.uniform(0.8, 1.2, size=var.shape)
        weights[name]["moving_mean"] = mean.astype(np.float32)
        weights[name]["moving_variance"] = var.astype(np.float32)
        for v in ("moving_mean", "moving_variance"):
            params[name][v] = torch.from_numpy(weights[name][v].astype(np.float64))
    return callback


def cross_entropy(logits, labels):
    """Categorical cross-entropy from logits [B, C] and int64 labels [B], mean over the batch."""
    logp = F.log_softmax(logits, dim=1)
    return -logp[torch.arange(logits.shape[0]), labels].mean()


def trained_grads(params, layer_names):
    """{layer: {var: gradient array}} of the variables of layer_names that required a gradient."""
    grads = {}
    for lname in layer_names:
        for vname, t in params.get(lname, {}).items():
            if t.requires_grad:
                grads.setdefault(lname, {})[vname] = t.grad.numpy().copy()  # same layout as weights
    return grads


def step_result(logits, loss, outs, base_out, boundary, grads, moving):
    """The dict save_reference writes, from one training step's tensors: logits [B, C] (before
    the softmax), the scalar loss, outs {layer: output} holding global_average_pooling2d,
    base_out and boundary (NCHW), grads {layer: {var: array}}, moving {layer: (mean, var)}."""
    return {
        "logits": logits.detach().numpy(),
        "probs": torch.softmax(logits.detach(), dim=1).numpy(),
        "loss": loss.item(),
        "pooled": outs["global_average_pooling2d"].detach().numpy(),
        "base_output": nchw_to_nhwc(outs[base_out]),
        "boundary_name": boundary,
        "boundary": nchw_to_nhwc(outs[boundary]),
        "grads": grads,
        "moving": moving,
    }


def last_use(layers):
    """{layer name: index of the last layer that reads its output} (to free activations)."""
    last = {}
    for i, L in enumerate(layers):
        for src in L.inputs:
            last[src] = i
    return last


def train_step(run_forward, params, labels, trainable, base_out, boundary, moving_update):
    """One training-mode forward + backward -> the step_result dict.

    run_forward(keep) runs the script's forward() keeping the outputs of the layers in `keep`
    and returns (outputs, {bn: (batch mean, biased batch variance, n)}); trainable: the
    layers whose gradients are collected; moving_update(mm, mv, mean, var_biased, n) the
    script's Keras moving-statistics update."""
    outs, bn_stats = run_forward((base_out, "global_average_pooling2d", boundary))
    logits = outs["dense_1"]
    loss = cross_entropy(logits, torch.from_numpy(labels.astype(np.int64)))
    loss.backward()
    grads = trained_grads(params, trainable)
    moving = {}
    for lname, (mean, var, n) in bn_stats.items():
        p = params[lname]
        mm, mv = moving_update(p["moving_mean"], p["moving_variance"], mean, var, n)
        moving[lname] = (mm.numpy(), mv.numpy())
    return step_result(logits, loss, outs, base_out, boundary, grads, moving)
