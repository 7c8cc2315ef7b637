"""Keras model files written from the Keras source's rules, without Keras (issue 14 fixtures).

A model is described in Python (``Layer`` and ``Model`` below: class, name, config options,
inbound layers, numpy weights in Keras's variable order; Functional or Sequential; models
nested in models) and written as:

* ``write_keras_archive``: a Keras 3 ``.keras`` zip (metadata.json, config.json,
  model.weights.h5);
* ``write_keras3_weights``: a Keras 3 ``.weights.h5`` (model.save_weights("m.weights.h5"));
* ``write_keras2_model_h5``: a Keras 2 (tf-keras) full-model ``.h5`` (model.save("m.h5"):
  root attributes model_config / keras_version / backend, weights under /model_weights);
* ``write_keras2_weights_h5``: a tf.keras ``model.save_weights("m.h5")`` file;
* ``keras3_config`` / ``keras2_config``: the two config JSON forms of the same model, as text
  via ``json.dumps``.

Every rule cites the Keras function it comes from: Keras 3 is keras-team/keras (keras/src/...),
Keras 2 is keras-team/tf-keras (tf_keras/...). Nothing here imports Keras or TensorFlow.

Names: every layer keeps one name in both forms (a Keras 3 model saved as .h5 keeps its names).
"""

import io
import json
import re
import zipfile

import h5py
import numpy as np

KERAS3_VERSION = "3.16.0"  # keras/src/version.py of the clone the rules were read from
KERAS2_VERSION = "2.15.0"  # a tf-keras 2.x release
BACKEND = "tensorflow"


# --------------------------------------------------------------------------------------------
# Model description
# --------------------------------------------------------------------------------------------

# Variables of each class in Keras's layer.weights order, and how many of them are trainable
# (the first ones): Conv2D/Dense build() adds kernel then bias; BatchNormalization.build adds
# gamma, beta (trainable) then moving_mean, moving_variance (non-trainable).
VARIABLES = {
    "Conv2D": (["kernel", "bias"], 2),
    "Dense": (["kernel", "bias"], 2),
    "BatchNormalization": (["gamma", "beta", "moving_mean", "moving_variance"], 2),
}


class Layer:
    """One Keras layer (never a model).

    cls: Keras class name; name: its Keras name; options: the layer's own get_config keys that
    differ from the defaults below (e.g. {"filters": 8, "kernel_size": 3}); inbound: names of
    the layers (or nested models) of the same Functional model feeding it (ignored inside a
    Sequential); weights: {var: array} (names from VARIABLES); shape: InputLayer only, the
    sample shape (H, W, C)."""

    def __init__(self, cls, name, options=None, inbound=(), weights=None, shape=None):
        self.cls, self.name = cls, name
        self.options = dict(options or {})
        self.inbound = list(inbound)
        self.weights = dict(weights or {})
        self.shape = shape
        self.call_kwargs = {}
        self.trainable = True
        self.is_model = False

    def variables(self):
        """[(var, array)] in layer.weights order; only the variables this layer has."""
        names, _ = VARIABLES.get(self.cls, ([], 0))
        if self.cls in ("Conv2D", "Dense") and not self.options.get("use_bias", True):
            names = ["kernel"]
        return [(v, self.weights[v]) for v in names if v in self.weights]

    def trainable_count(self):
        """How many of variables() are trainable variables (the first ones)."""
        _, n = VARIABLES.get(self.cls, ([], 0))
        return min(n, len(self.variables()))


class Model:
    """A Functional or Sequential model.

    kind: "Functional" or "Sequential"; layers: Keras's ``super().layers`` order, the
    InputLayer first (a Sequential built on an Input keeps it in its config but not in
    model.layers); output: the Functional model's output layer (default: the last);
    inbound / call_kwargs: how an enclosing Functional model calls it (e.g. {"training":
    False}, the transfer-learning guide's base(x, training=False))."""

    def __init__(self, kind, name, layers, output=None, inbound=(), call_kwargs=None,
                 trainable=True):
        assert kind in ("Functional", "Sequential")
        self.kind, self.name, self.layers = kind, name, list(layers)
        assert self.layers and self.layers[0].cls == "InputLayer", f"{name}: no InputLayer"
        self.output = output or self.layers[-1].name
        self.inbound = list(inbound)
        self.call_kwargs = dict(call_kwargs or {})
        self.is_model = True
        self.trainable = True
        if not trainable:  # base.trainable = False after building it
            self.set_trainable(False)

    @property
    def cls(self):
        return self.kind

    def set_trainable(self, value):
        # keras/src/layers/layer.py Layer.trainable setter (and tf-keras's): setting a model's
        # trainable sets every sublayer's.
        self.trainable = value
        for L in self.layers:
            if L.is_model:
                L.set_trainable(value)
            else:
                L.trainable = value

    def keras_layers(self):
        """model.layers: keras/src/models/sequential.py Sequential.layers drops the
        InputLayer; keras/src/models/functional.py Functional.layers keeps it (tf-keras
        likewise)."""
        return self.layers[1:] if self.kind == "Sequential" else list(self.layers)

    def input_shape(self):
        return tuple(self.layers[0].shape)

    def weights(self):
        """model.weights: every layer's variables, layer by layer, in Keras order."""
        out = []
        for L in self.keras_layers():
            out += L.weights() if L.is_model else [(L.name, v, a) for v, a in L.variables()]
        return out

    def split_weights(self):
        """(trainable_weights, non_trainable_weights) as tf-keras's Layer properties gather
        them: each child's trainable weights, then each child's non-trainable ones; for a frozen
        model (Layer.non_trainable_weights with trainable False gathers each child's
        `variables`) nothing trainable and every variable layer by layer."""
        if not self.trainable:
            return [], self.weights()
        train, frozen = [], []
        for L in self.keras_layers():
            if L.is_model:
                t, f = L.split_weights()
            else:
                vs = [(L.name, v, a) for v, a in L.variables()]
                n = L.trainable_count() if L.trainable else 0
                t, f = vs[:n], vs[n:]
            train += t
            frozen += f
        return train, frozen

    def legacy_weights(self):
        """tf_keras/saving/legacy/hdf5_format.py _legacy_weights(model):
        trainable_weights + non_trainable_weights."""
        t, f = self.split_weights()
        return t + f


# --------------------------------------------------------------------------------------------
# Shapes (for Keras 3's build_config and KerasTensor shapes)
# --------------------------------------------------------------------------------------------

def _pair(v):
    return list(v) if isinstance(v, (list, tuple)) else [v, v]


def output_shape(L, in_shapes):
    """Sample output shape (no batch) of layer or model L for its sample input shapes."""
    if L.is_model:
        return infer_shapes(L)[L.output] if L.kind == "Functional" else infer_shapes(L)["__out"]
    s = in_shapes[0] if in_shapes else None
    o = L.options
    if L.cls == "InputLayer":
        return tuple(L.shape)
    if L.cls in ("Conv2D", "MaxPooling2D"):
        if L.cls == "Conv2D":
            k, st, ch = _pair(o["kernel_size"]), _pair(o.get("strides", 1)), o["filters"]
        else:
            k = _pair(o.get("pool_size", 2))
            st, ch = _pair(o.get("strides") or k), s[2]
        if o.get("padding", "valid") == "same":
            return (-(-s[0] // st[0]), -(-s[1] // st[1]), ch)
        return ((s[0] - k[0]) // st[0] + 1, (s[1] - k[1]) // st[1] + 1, ch)
    if L.cls == "GlobalAveragePooling2D":
        return (s[2],)
    if L.cls == "Flatten":
        return (int(np.prod(s)),)
    if L.cls == "Dense":
        return (o["units"],)
    return tuple(s)  # BatchNormalization, ReLU, Activation, Dropout, Rescaling, Add


def infer_shapes(model):
    """{layer name: sample output shape} for one model's layers; "__out" is the output's."""
    shapes = {}
    prev = None
    for L in model.layers:
        if model.kind == "Sequential":
            ins = [] if prev is None else [shapes[prev]]
        else:
            ins = [shapes[n] for n in L.inbound]
        shapes[L.name] = output_shape(L, ins)
        prev = L.name
    shapes["__out"] = shapes[model.output if model.kind == "Functional" else prev]
    return shapes


def _batch(shape):
    return [None] + list(shape)


# --------------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------------

def _k3_object(module, cls, config):
    # keras/src/saving/serialization_lib.py serialize_with_public_class: a public Keras class
    # is {"module", "class_name", "config", "registered_name": None}.
    return {"module": module, "class_name": cls, "config": config, "registered_name": None}


def _initializer(cls, config, keras):
    # Keras 3: serialize_keras_object of keras.initializers.X; tf-keras 2.x:
    # tf_keras/initializers serialize -> {"class_name", "config"}.
    if keras == 3:
        return _k3_object("keras.initializers", cls, config)
    return {"class_name": cls, "config": config}


def _dtype(keras):
    # keras/src/layers/layer.py Layer.get_config: "dtype": dtype_policies.serialize(policy);
    # tf-keras Layer.get_config: "dtype": the policy name.
    if keras == 3:
        return _k3_object("keras", "DTypePolicy", {"name": "float32"})
    return "float32"


def layer_options(L, keras, in_shape):
    """The layer's get_config() dict in Keras 3 or Keras 2 form."""
    o = L.options
    base = {"name": L.name, "trainable": L.trainable, "dtype": _dtype(keras)}
    glorot = _initializer("GlorotUniform", {"seed": None}, keras)
    zeros, ones = _initializer("Zeros", {}, keras), _initializer("Ones", {}, keras)
    if L.cls == "InputLayer":
        if keras == 3:
            # keras/src/layers/core/input_layer.py InputLayer.get_config
            return {"batch_shape": _batch(L.shape), "dtype": "float32", "sparse": False,
                    "ragged": False, "name": L.name, "optional": False}
        # tf_keras/engine/input_layer.py InputLayer.get_config
        return {"batch_input_shape": _batch(L.shape), "dtype": "float32", "sparse": False,
                "ragged": False, "name": L.name}
    if L.cls == "Conv2D":
        # keras/src/layers/convolutional/base_conv.py BaseConv.get_config (tf-keras Conv the
        # same keys)
        c = dict(base, filters=o["filters"], kernel_size=_pair(o["kernel_size"]),
                 strides=_pair(o.get("strides", 1)), padding=o.get("padding", "valid"),
                 data_format="channels_last", dilation_rate=[1, 1], groups=1,
                 activation=o.get("activation", "linear"), use_bias=o.get("use_bias", True),
                 kernel_initializer=glorot, bias_initializer=zeros, kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None)
        return c
    if L.cls == "BatchNormalization":
        # keras/src/layers/normalization/batch_normalization.py get_config: axis as given
        # (int(axis), -1 by default). tf-keras BatchNormalizationBase.build turns the axis into
        # a list of positive axes, so a built model's config has [3].
        axis = o.get("axis", -1)
        if keras == 2:
            axis = [axis % (len(in_shape) + 1)]
        c = dict(base, axis=axis, momentum=o.get("momentum", 0.99),
                 epsilon=o.get("epsilon", 0.001), center=True, scale=True,
                 beta_initializer=zeros, gamma_initializer=ones,
                 moving_mean_initializer=zeros, moving_variance_initializer=ones,
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None)
        if keras == 3:
            c.update(synchronized=False, renorm=False, renorm_clipping=None,
                     renorm_momentum=0.99)
        return c
    if L.cls == "MaxPooling2D":
        # keras/src/layers/pooling/base_pooling.py get_config (strides default to pool_size)
        k = _pair(o.get("pool_size", 2))
        return dict(base, pool_size=k, padding=o.get("padding", "valid"),
                    strides=_pair(o.get("strides") or k), data_format="channels_last")
    if L.cls == "GlobalAveragePooling2D":
        # keras/src/layers/pooling/base_global_pooling.py get_config
        return dict(base, data_format="channels_last", keepdims=False)
    if L.cls == "Flatten":
        return dict(base, data_format="channels_last")  # reshaping/flatten.py get_config
    if L.cls == "Dropout":
        # keras/src/layers/regularization/dropout.py get_config
        return dict(base, rate=o["rate"], seed=None, noise_shape=None)
    if L.cls == "Dense":
        # keras/src/layers/core/dense.py get_config (Keras 3 adds quantization_config)
        c = dict(base, units=o["units"], activation=o.get("activation", "linear"),
                 use_bias=o.get("use_bias", True), kernel_initializer=glorot,
                 bias_initializer=zeros, kernel_regularizer=None, bias_regularizer=None,
                 kernel_constraint=None, bias_constraint=None)
        if keras == 3:
            c["quantization_config"] = None
        else:
            c["activity_regularizer"] = None
        return c
    if L.cls == "Rescaling":
        # keras/src/layers/preprocessing/rescaling.py get_config
        return dict(base, scale=o["scale"], offset=o.get("offset", 0.0))
    if L.cls == "ReLU":
        # keras/src/layers/activations/relu.py get_config
        return dict(base, max_value=o.get("max_value"), negative_slope=0.0, threshold=0.0)
    if L.cls == "Activation":
        return dict(base, activation=o["activation"])  # core/activation.py get_config
    if L.cls == "Add":
        return base  # keras/src/layers/merging/base_merge.py get_config
    raise ValueError(f"keras_model_writer: no config rule for class {L.cls} ({L.name})")


def _k3_tensor(shape, layer, node_index):
    # keras/src/saving/serialization_lib.py serialize_keras_object of a KerasTensor:
    # {"class_name": "__keras_tensor__", "config": {"shape", "dtype", "keras_history"}}
    return {"class_name": "__keras_tensor__",
            "config": {"shape": _batch(shape), "dtype": "float32",
                       "keras_history": [layer, node_index, 0]}}


def _k3_entry(L, in_shapes):
    """serialize_keras_object(layer) for a Keras 3 config."""
    if L.is_model:
        return keras3_config(L)
    entry = _k3_object("keras.layers", L.cls, layer_options(L, 3, in_shapes[0] if in_shapes
                                                              else None))
    # serialization_lib.get_build_and_compile_config: layers built by a call record
    # {"input_shape": ...}; an InputLayer never records one (built in its constructor).
    if L.cls != "InputLayer":
        ins = [_batch(s) for s in in_shapes]
        entry["build_config"] = {"input_shape": ins if len(ins) > 1 else ins[0]}
    return entry


# Classes whose call() takes a `mask` argument (BatchNormalization.call(inputs, training,
# mask), Functional/Sequential.call(inputs, training, mask)); the others here have none.
_CALL_HAS_MASK = ("BatchNormalization", "Functional", "Sequential")


def _k3_call_kwargs(L):
    """A node's kwargs: what the call passed (e.g. training=False), then Layer.__call__'s step
    6 (keras/src/layers/layer.py) fills `mask` (None for an unmasked input) when call() has a
    mask argument and one tensor argument."""
    kwargs = dict(L.call_kwargs)
    if L.cls in _CALL_HAS_MASK:
        kwargs["mask"] = None
    return kwargs


def keras3_config(model):
    """serialize_keras_object(model) (saving_lib._serialize_model_as_json's config.json)."""
    shapes = infer_shapes(model)
    layers = []
    prev = None
    for L in model.layers:
        if model.kind == "Sequential":
            ins = [] if prev is None else [shapes[prev]]
        else:
            ins = [shapes[n] for n in L.inbound]
        entry = _k3_entry(L, ins)
        if model.kind == "Functional":
            # keras/src/models/functional.py Functional.get_config: each entry gets "name" and
            # "inbound_nodes" (serialize_node: {"args": [...], "kwargs": {...}}; none for an
            # InputLayer). serialize_node writes keras_history's node index as the producer's
            # own node index (minus nodes outside the model): a nested Functional model called
            # once is node 0 there (functional_from_config's get_tensor subtracts the built-in
            # node only for input_layers / output_layers).
            entry["name"] = L.name
            if L.cls == "InputLayer":
                entry["inbound_nodes"] = []
            else:
                ts = [_k3_tensor(shapes[n], n, 0) for n in L.inbound]
                args = [ts] if len(ts) > 1 else ts
                entry["inbound_nodes"] = [{"args": args, "kwargs": _k3_call_kwargs(L)}]
        layers.append(entry)
        prev = L.name
    if model.kind == "Functional":
        out = model.output
        out_node = 1 if next(L for L in model.layers if L.name == out).is_model else 0
        config = {"name": model.name, "trainable": model.trainable, "layers": layers,
                  # Functional.get_config: map_tensors over _inputs_struct / _outputs_struct,
                  # one tensor each here (keras.Model(inputs, outputs) with single tensors);
                  # a nested Functional output counts its built-in node (kept_nodes = 1).
                  "input_layers": [model.layers[0].name, 0, 0],
                  "output_layers": [out, out_node, 0]}
        obj = {"module": "keras.src.models.functional", "class_name": "Functional",
               "config": config, "registered_name": "Functional",
               "build_config": {"input_shape": None}}
        return obj
    # keras/src/models/sequential.py Sequential.get_config: Layer.get_config (name, trainable,
    # dtype) + every layer of super().layers (InputLayer included) + build_input_shape.
    config = {"name": model.name, "trainable": model.trainable, "dtype": _dtype(3),
              "layers": layers, "build_input_shape": _batch(model.input_shape())}
    obj = _k3_object("keras", "Sequential", config)
    obj["build_config"] = {"input_shape": _batch(model.input_shape())}
    return obj


def keras2_config(model):
    """tf-keras {"class_name", "config"} of a model (saving_utils.model_metadata's
    model_config): Functional.get_config -> functional.get_network_config, Sequential.get_config
    (InputLayer first, as a Sequential built on an Input lists it)."""
    shapes = infer_shapes(model)
    layers = []
    prev = None
    for L in model.layers:
        if model.kind == "Sequential":
            ins = [] if prev is None else [shapes[prev]]
        else:
            ins = [shapes[n] for n in L.inbound]
        if L.is_model:
            entry = keras2_config(L)
        else:
            entry = {"class_name": L.cls, "config": layer_options(L, 2, ins[0] if ins else None)}
        if model.kind == "Functional":
            # tf_keras/engine/functional.py get_network_config: "name" and "inbound_nodes" as
            # [[[layer, node_index, tensor_index, kwargs], ...]]; node indices are renumbered
            # with kept_nodes = 1 for a nested Functional (its built-in node, created by
            # _init_graph_network), so its first call is node 1.
            entry["name"] = L.name
            if L.cls == "InputLayer":
                entry["inbound_nodes"] = []
            else:
                by_name = {x.name: x for x in model.layers}
                # (tf-keras's Sequential is a Functional subclass: it counts one too.)
                entry["inbound_nodes"] = [[
                    [n, 1 if by_name[n].is_model else 0, 0, dict(L.call_kwargs)]
                    for n in L.inbound]]
        layers.append(entry)
        prev = L.name
    if model.kind == "Functional":
        out = next(L for L in model.layers if L.name == model.output)
        config = {"name": model.name, "trainable": model.trainable, "layers": layers,
                  "input_layers": [[model.layers[0].name, 0, 0]],
                  "output_layers": [[out.name, 1 if out.is_model else 0, 0]]}
        return {"class_name": "Functional", "config": config}
    return {"class_name": "Sequential", "config": {"name": model.name, "layers": layers}}


# --------------------------------------------------------------------------------------------
# Keras 3 weights (H5IOStore)
# --------------------------------------------------------------------------------------------

def to_snake_case(name):
    """keras/src/utils/naming.py to_snake_case."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def container_names(model):
    """saving_lib._save_container_state over model.layers: each entry's path name is
    _get_unique_name(to_snake_case(class name), used_names): conv2d, conv2d_1, ..."""
    used, names = {}, []
    for L in model.keras_layers():
        base = to_snake_case(L.cls)
        if base in used:  # saving_lib._get_unique_name
            used[base] += 1
            names.append(f"{base}_{used[base]}")
        else:
            used[base] = 0
            names.append(base)
    return names


def _k3_vars_group(h5, path, name):
    # saving_lib.H5IOStore._create_h5_group: "<path>/vars" ("vars" at the root), with the
    # metadata {"name": saveable.name} that saving_lib._save_state passes to make() as
    # attributes (so the group exists even for a layer without variables).
    g = h5.create_group(f"{path}/vars" if path else "vars")
    g.attrs["name"] = name
    return g


def _k3_save_state(h5, saveable, path):
    """saving_lib._save_state: own variables under <path>/vars, then (Functional and
    Sequential) "layers" as a container: saving_lib._save_container_state names each layer
    by container_names."""
    g = _k3_vars_group(h5, path, saveable.name)
    if not saveable.is_model:
        # keras/src/layers/layer.py Layer.save_own_variables: store[f"{i}"] over
        # _trainable_variables + _non_trainable_variables (the build order).
        for i, (_, a) in enumerate(saveable.variables()):
            g.create_dataset(str(i), data=np.asarray(a, np.float32))
        return
    for L, base in zip(saveable.keras_layers(), container_names(saveable)):
        _k3_save_state(h5, L, f"{path}/layers/{base}" if path else f"layers/{base}")


def write_keras3_weights(path_or_file, model):
    """model.save_weights("m.weights.h5"): saving_lib.save_weights_only -> _save_state."""
    with h5py.File(path_or_file, "w") as h5:
        _k3_save_state(h5, model, "")


def write_keras_archive(path, model):
    """model.save("m.keras"): saving_lib._save_model_to_fileobj writes metadata.json,
    config.json, then model.weights.h5 (H5IOStore into the zip), ZipFile's default (stored)."""
    config_json = json.dumps(keras3_config(model))
    metadata_json = json.dumps({"keras_version": KERAS3_VERSION,
                                "date_saved": "2026-11-30@12:00:00"})
    weights = io.BytesIO()
    write_keras3_weights(weights, model)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", metadata_json)
        zf.writestr("config.json", config_json)
        zf.writestr("model.weights.h5", weights.getvalue())


# --------------------------------------------------------------------------------------------
# Keras 2 (tf-keras legacy h5)
# --------------------------------------------------------------------------------------------

def _save_attributes(group, name, data):
    # tf_keras/saving/legacy/hdf5_format.py save_attributes_to_hdf5_group: group.attrs[name] =
    # data (a list of bytes; an empty list becomes h5py's empty float64 array).
    group.attrs[name] = np.asarray(data) if data else np.asarray([], dtype=np.float64)


def _save_weights_group(f, model):
    """hdf5_format.save_weights_to_hdf5_group: layer_names (model.layers), backend,
    keras_version; one group per layer, sorted by name, with weight_names = the variable names
    of _legacy_weights(layer) ("<layer>/<var>:0"; a nested model's layers keep their own
    names) and one dataset per name; then an empty top_level_model_weights group."""
    _save_attributes(f, "layer_names", [L.name.encode("utf8") for L in model.keras_layers()])
    f.attrs["backend"] = BACKEND.encode("utf8")
    f.attrs["keras_version"] = KERAS2_VERSION.encode("utf8")
    for L in sorted(model.keras_layers(), key=lambda x: x.name):
        g = f.create_group(L.name)
        if L.is_model:
            ws = L.legacy_weights()
        else:
            vs = [(L.name, v, a) for v, a in L.variables()]
            n = L.trainable_count() if L.trainable else 0
            ws = vs[:n] + vs[n:]  # trainable_weights + non_trainable_weights
        names = [f"{owner}/{var}:0" for owner, var, _ in ws]
        _save_attributes(g, "weight_names", [n.encode("utf8") for n in names])
        for n, (_, _, a) in zip(names, ws):
            g.create_dataset(n, data=np.asarray(a, np.float32))
    g = f.create_group("top_level_model_weights")
    _save_attributes(g, "weight_names", [])


def write_keras2_weights_h5(path, model):
    """tf.keras model.save_weights("m.h5"): save_weights_to_hdf5_group at the file's root."""
    with h5py.File(path, "w") as f:
        _save_weights_group(f, model)


def write_keras2_model_h5(path, model):
    """tf.keras model.save("m.h5"): hdf5_format.save_model_to_hdf5 writes
    saving_utils.model_metadata as root attributes (dicts as JSON bytes, strings as they are),
    then the weights under /model_weights (uncompiled: no training_config, no optimizer)."""
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = KERAS2_VERSION
        f.attrs["backend"] = BACKEND
        f.attrs["model_config"] = json.dumps(keras2_config(model)).encode("utf8")
        _save_weights_group(f.create_group("model_weights"), model)


def write_all(prefix, model):
    """The four files and the two configs: <prefix>.keras, <prefix>.weights.h5,
    <prefix>_k2.h5 (full model), <prefix>_k2_weights.h5, <prefix>_k3.json, <prefix>_k2.json."""
    write_keras_archive(f"{prefix}.keras", model)
    write_keras3_weights(f"{prefix}.weights.h5", model)
    write_keras2_model_h5(f"{prefix}_k2.h5", model)
    write_keras2_weights_h5(f"{prefix}_k2_weights.h5", model)
    with open(f"{prefix}_k3.json", "w") as fh:
        fh.write(json.dumps(keras3_config(model), indent=1))
    with open(f"{prefix}_k2.json", "w") as fh:
        fh.write(json.dumps(keras2_config(model), indent=1))


# --------------------------------------------------------------------------------------------
# Reading back (self-checks): every variable of each format, as {(layer, var): array}
# --------------------------------------------------------------------------------------------

def _k3_read(h5, model, path, out):
    for L, base in zip(model.keras_layers(), container_names(model)):
        p = f"{path}/layers/{base}" if path else f"layers/{base}"
        assert h5[f"{p}/vars"].attrs["name"] == L.name, (p, L.name)
        if L.is_model:
            _k3_read(h5, L, p, out)
        else:
            for i, (v, _) in enumerate(L.variables()):
                out[(L.name, v)] = np.asarray(h5[f"{p}/vars/{i}"])
    return out


def read_keras3_weights(h5, model):
    return _k3_read(h5, model, "", {})


def read_keras2_weights(f):
    """{(layer, var): array} from a save_weights_to_hdf5_group group, by weight_names."""
    out = {}
    for lname in f.attrs["layer_names"]:
        g = f[lname.decode()]
        for wn in g.attrs["weight_names"]:
            wn = wn.decode()
            owner, var = wn[:-2].rsplit("/", 1)
            out[(owner, var)] = np.asarray(g[wn])
    return out


def self_check(prefix, model):
    """Every format holds the model's weights, bitwise; the configs name the same layers."""
    expected = {(o, v): np.asarray(a, np.float32) for o, v, a in model.weights()}
    with zipfile.ZipFile(f"{prefix}.keras") as zf:
        assert zf.namelist() == ["metadata.json", "config.json", "model.weights.h5"]
        with h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r") as h5:
            got = [read_keras3_weights(h5, model)]
        assert json.loads(zf.read("config.json")) == keras3_config(model)
    with h5py.File(f"{prefix}.weights.h5", "r") as h5:
        got.append(read_keras3_weights(h5, model))
    with h5py.File(f"{prefix}_k2.h5", "r") as f:
        got.append(read_keras2_weights(f["model_weights"]))
        assert json.loads(f.attrs["model_config"]) == keras2_config(model)
    with h5py.File(f"{prefix}_k2_weights.h5", "r") as f:
        got.append(read_keras2_weights(f))
    for i, g in enumerate(got):
        assert set(g) == set(expected), (prefix, i, set(g) ^ set(expected))
        for k in expected:
            assert np.array_equal(g[k], expected[k]), (prefix, i, k)
    return len(expected)
