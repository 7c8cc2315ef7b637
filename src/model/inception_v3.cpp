// keras.applications.inception_v3's InceptionV3 (include_top=False,
// pooling=None), as tf.keras 2.x builds it
// (keras/applications/inception_v3.py): 94 conv2d_bn units (Conv2D without bias
// -> BatchNormalization(scale=False, epsilon 1e-3, momentum 0.99) ->
// Activation('relu')), 4 MaxPooling2D 3x3/2 'valid', 9 AveragePooling2D 3x3/1
// 'same' and 15 Concatenate, 311 layers with the InputLayer, 21,802,784 weights
// (BN moving statistics included).
//
// The layers are unnamed in Keras (but mixed0..mixed10, mixed9_0, mixed9_1), so
// a fresh session names them by creation order: conv2d, conv2d_1, ...,
// batch_normalization_93, activation_93, max_pooling2d_3, average_pooling2d_8,
// concatenate, concatenate_1. base.layers is not the creation order: tf.keras
// functional._map_graph_network sorts the layers by depth (the longest path to
// the output), deepest first, and breaks ties by the order in which a
// depth-first walk from the output, visiting each node's inputs in order, first
// reaches them. So the builder records the graph in creation order (Session)
// and then adds it to the Model in that order.
#include <algorithm>
#include <functional>
#include <map>
#include <stdexcept>

#include "backbone_builders.hpp"
#include "parafine/layers/batch_norm.hpp"
#include "parafine/layers/concatenate.hpp"
#include "parafine/layers/conv2d.hpp"
#include "parafine/layers/pooling.hpp"
#include "parafine/layers/simple_layers.hpp"

namespace parafine {

namespace {

constexpr float kInceptionBnEpsilon = 1e-3f;  // tf.keras BatchNormalization's default
constexpr float kInceptionBnMomentum = 0.99f;

// The graph in the order inception_v3.py creates (and calls) its layers, named
// as a fresh tf.keras session names them (backend.unique_object_name,
// zero-based per class).
struct Session {
  struct Created {
    std::unique_ptr<Layer> layer;
    std::vector<int> inputs;  // indices into `layers`
  };
  std::vector<Created> layers;
  std::map<std::string, int> uids;

  std::string auto_name(const std::string& prefix) {
    const int n = uids[prefix]++;
    return n == 0 ? prefix : prefix + "_" + std::to_string(n);
  }
  int add(std::unique_ptr<Layer> layer, std::vector<int> inputs) {
    layers.push_back({std::move(layer), std::move(inputs)});
    return static_cast<int>(layers.size()) - 1;
  }

  // inception_v3.conv2d_bn: a kh x kw Conv2D without bias, BN(scale=False),
  // ReLU.
  int conv2d_bn(int x, int filters, int kh, int kw, Padding pad = Padding::kSame, int stride = 1) {
    x = add(std::make_unique<Conv2D>(auto_name("conv2d"), filters, KernelSize{kh, kw}, stride, pad,
                                     /*use_bias=*/false),
            {x});
    x = add(std::make_unique<BatchNormalization>(auto_name("batch_normalization"),
                                                 kInceptionBnEpsilon, kInceptionBnMomentum,
                                                 /*scale=*/false),
            {x});
    return add(std::make_unique<ReLU>(auto_name("activation")), {x});
  }
  int max_pool(int x) {
    return add(std::make_unique<MaxPooling2D>(auto_name("max_pooling2d"), 3, 2, Padding::kValid),
               {x});
  }
  int avg_pool(int x) {
    return add(
        std::make_unique<AveragePooling2D>(auto_name("average_pooling2d"), 3, 1, Padding::kSame),
        {x});
  }
  // layers.concatenate(xs, axis=-1, name=name); an unnamed one takes
  // "concatenate[_k]".
  int concat(std::vector<int> xs, const std::string& name = "") {
    const int n = static_cast<int>(xs.size());
    return add(std::make_unique<Concatenate>(name.empty() ? auto_name("concatenate") : name, n),
               std::move(xs));
  }
};

// The InceptionV3 graph, transcribed from inception_v3.py; returns the output
// (mixed10).
int create_inception_v3(Session& s, const NetworkConfig& c) {
  const int img = s.add(
      std::make_unique<InputLayer>("input_1", Shape{c.image_size, c.image_size, c.channels}), {});
  int x = s.conv2d_bn(img, 32, 3, 3, Padding::kValid, 2);
  x = s.conv2d_bn(x, 32, 3, 3, Padding::kValid);
  x = s.conv2d_bn(x, 64, 3, 3);
  x = s.max_pool(x);
  x = s.conv2d_bn(x, 80, 1, 1, Padding::kValid);
  x = s.conv2d_bn(x, 192, 3, 3, Padding::kValid);
  x = s.max_pool(x);

  // mixed 0, 1, 2: 35 x 35 x 256 at 299; the pool branch has 32, 64, 64
  // filters.
  const int pool_filters[3] = {32, 64, 64};
  for (int i = 0; i < 3; ++i) {
    const int b1 = s.conv2d_bn(x, 64, 1, 1);
    int b5 = s.conv2d_bn(x, 48, 1, 1);
    b5 = s.conv2d_bn(b5, 64, 5, 5);
    int b3 = s.conv2d_bn(x, 64, 1, 1);
    b3 = s.conv2d_bn(b3, 96, 3, 3);
    b3 = s.conv2d_bn(b3, 96, 3, 3);
    int bp = s.avg_pool(x);
    bp = s.conv2d_bn(bp, pool_filters[i], 1, 1);
    x = s.concat({b1, b5, b3, bp}, "mixed" + std::to_string(i));
  }

  // mixed 3: 17 x 17 x 768
  {
    const int b3 = s.conv2d_bn(x, 384, 3, 3, Padding::kValid, 2);
    int bd = s.conv2d_bn(x, 64, 1, 1);
    bd = s.conv2d_bn(bd, 96, 3, 3);
    bd = s.conv2d_bn(bd, 96, 3, 3, Padding::kValid, 2);
    const int bp = s.max_pool(x);
    x = s.concat({b3, bd, bp}, "mixed3");
  }

  // mixed 4, 5, 6, 7: 17 x 17 x 768; the 7x7 branches have 128, 160, 160, 192
  // filters.
  const int f7s[4] = {128, 160, 160, 192};
  for (int i = 0; i < 4; ++i) {
    const int f7 = f7s[i];
    const int b1 = s.conv2d_bn(x, 192, 1, 1);
    int b7 = s.conv2d_bn(x, f7, 1, 1);
    b7 = s.conv2d_bn(b7, f7, 1, 7);
    b7 = s.conv2d_bn(b7, 192, 7, 1);
    int bd = s.conv2d_bn(x, f7, 1, 1);
    bd = s.conv2d_bn(bd, f7, 7, 1);
    bd = s.conv2d_bn(bd, f7, 1, 7);
    bd = s.conv2d_bn(bd, f7, 7, 1);
    bd = s.conv2d_bn(bd, 192, 1, 7);
    int bp = s.avg_pool(x);
    bp = s.conv2d_bn(bp, 192, 1, 1);
    x = s.concat({b1, b7, bd, bp}, "mixed" + std::to_string(4 + i));
  }

  // mixed 8: 8 x 8 x 1280
  {
    int b3 = s.conv2d_bn(x, 192, 1, 1);
    b3 = s.conv2d_bn(b3, 320, 3, 3, Padding::kValid, 2);
    int b7 = s.conv2d_bn(x, 192, 1, 1);
    b7 = s.conv2d_bn(b7, 192, 1, 7);
    b7 = s.conv2d_bn(b7, 192, 7, 1);
    b7 = s.conv2d_bn(b7, 192, 3, 3, Padding::kValid, 2);
    const int bp = s.max_pool(x);
    x = s.concat({b3, b7, bp}, "mixed8");
  }

  // mixed 9, 10: 8 x 8 x 2048
  for (int i = 0; i < 2; ++i) {
    const int b1 = s.conv2d_bn(x, 320, 1, 1);
    int b3 = s.conv2d_bn(x, 384, 1, 1);
    const int b3_1 = s.conv2d_bn(b3, 384, 1, 3);
    const int b3_2 = s.conv2d_bn(b3, 384, 3, 1);
    b3 = s.concat({b3_1, b3_2}, "mixed9_" + std::to_string(i));
    int bd = s.conv2d_bn(x, 448, 1, 1);
    bd = s.conv2d_bn(bd, 384, 3, 3);
    const int bd_1 = s.conv2d_bn(bd, 384, 1, 3);
    const int bd_2 = s.conv2d_bn(bd, 384, 3, 1);
    bd = s.concat({bd_1, bd_2});
    int bp = s.avg_pool(x);
    bp = s.conv2d_bn(bp, 192, 1, 1);
    x = s.concat({b1, b3, bd, bp}, "mixed" + std::to_string(9 + i));
  }
  return x;
}

// tf.keras functional._map_graph_network's layer order for a graph with one
// output (no shared layers): _build_map's depth-first walk from the output
// gives each layer its first-visit index and a post-order; in reverse
// post-order each node's depth is final and passes depth + 1 to its inputs (the
// longest path to the output); layers sort by depth descending, then by
// first-visit.
std::vector<int> keras_layer_order(const std::vector<Session::Created>& g, int output) {
  const std::size_t n = g.size();
  std::vector<int> first_visit(n, -1), post_order, depth(n, 0);
  int visits = 0;
  std::function<void(int)> visit = [&](int v) {
    if (first_visit[static_cast<std::size_t>(v)] >= 0) return;  // finished (a DAG: no cycles)
    first_visit[static_cast<std::size_t>(v)] = visits++;
    for (int u : g[static_cast<std::size_t>(v)].inputs) visit(u);
    post_order.push_back(v);
  };
  visit(output);
  for (auto it = post_order.rbegin(); it != post_order.rend(); ++it)
    for (int u : g[static_cast<std::size_t>(*it)].inputs)
      depth[static_cast<std::size_t>(u)] =
          std::max(depth[static_cast<std::size_t>(u)], depth[static_cast<std::size_t>(*it)] + 1);
  std::vector<int> order = post_order;
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    const auto ua = static_cast<std::size_t>(a), ub = static_cast<std::size_t>(b);
    if (depth[ua] != depth[ub]) return depth[ua] > depth[ub];
    return first_visit[ua] < first_visit[ub];
  });
  if (order.size() != n)
    throw std::logic_error("InceptionV3: " + std::to_string(n - order.size()) +
                           " created layers do not lead to the output");
  return order;
}

}  // namespace

int add_inception_v3_base(Model& m, const NetworkConfig& c) {
  Session s;
  const int output = create_inception_v3(s, c);
  const std::vector<int> order = keras_layer_order(s.layers, output);
  std::vector<int> node_of(s.layers.size(), -1);  // creation index -> Model node
  for (int created : order) {
    Session::Created& l = s.layers[static_cast<std::size_t>(created)];
    std::vector<int> inputs;
    for (int u : l.inputs) inputs.push_back(node_of[static_cast<std::size_t>(u)]);
    node_of[static_cast<std::size_t>(created)] = m.add(std::move(l.layer), std::move(inputs));
  }
  return node_of[static_cast<std::size_t>(output)];
}

}  // namespace parafine
