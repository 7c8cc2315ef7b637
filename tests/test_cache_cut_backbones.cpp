// Where the feature cache cuts each backbone (issue 13): the cut comes from the graph, not from
// ResNet's names. For every --unfreeze-last N of every backbone, the phase-2 cache node is the
// last node before the earliest trainable layer through which every path to the output passes:
// no later layer reads anything before it. In InceptionV3 that is a mixedK output (or the stem),
// never a node inside a branch; VGG16's cuts are the layer before the first trainable one.
#include <gtest/gtest.h>

#include <iostream>
#include <regex>
#include <string>

#include "parafine/cache/cache_plan.hpp"
#include "parafine/model/backbone.hpp"

namespace parafine {
namespace {

NetworkConfig config(Backbone b, int size) {
  NetworkConfig c;
  c.backbone = b;
  c.image_size = size;
  c.classes = 2;
  c.head_units = 4;
  return c;
}

// The phase-2 cut for --unfreeze-last n, and the model's first trainable node.
std::pair<int, int> cut_for(Model& m, int n) {
  freeze_base(m);
  unfreeze_last_base_layers(m, n);
  const int first = m.first_trainable_node();
  return {restart_node(m, first), first};
}

// No node after `cut` reads an output from before it, and nothing between cut and the first
// trainable node is a later cut (it is the LAST such node).
void expect_dominating_cut(const Model& m, int cut, int first, const std::string& what) {
  ASSERT_LT(cut, first) << what;
  for (int j = cut + 1; j < m.size(); ++j)
    for (int k : m.inputs_of(j))
      ASSERT_GE(k, cut) << what << ": " << m.layer(j).name() << " reads " << m.layer(k).name()
                        << " from before the cut";
  for (int b = cut + 1; b < first; ++b) {
    bool boundary = true;
    for (int j = b + 1; j < m.size() && boundary; ++j)
      for (int k : m.inputs_of(j)) boundary = boundary && k >= b;
    EXPECT_FALSE(boundary) << what << ": " << m.layer(b).name() << " is a later cut than "
                           << m.layer(cut).name();
  }
}

TEST(CacheCut, Vgg16CutsJustBeforeTheFirstTrainableLayer) {
  Model m = build_network(config(Backbone::kVGG16, 32));
  // base.layers[-2:] = block5_conv3, block5_pool: the cache holds block5_conv3's input.
  auto [cut, first] = cut_for(m, 2);
  std::cout << "vgg16 --unfreeze-last 2: cut " << m.layer(cut).name() << "\n";
  EXPECT_EQ(m.layer(cut).name(), "block5_conv2");
  EXPECT_EQ(m.layer(first).name(), "block5_conv3");
  // base.layers[-4:] = block5_conv1 ... block5_pool: block5_conv1's input.
  std::tie(cut, first) = cut_for(m, 4);
  std::cout << "vgg16 --unfreeze-last 4: cut " << m.layer(cut).name() << "\n";
  EXPECT_EQ(m.layer(cut).name(), "block4_pool");
}

TEST(CacheCut, InceptionV3CutsAtAMixedOutputNeverInsideABranch) {
  Model m = build_network(config(Backbone::kInceptionV3, 75));
  const std::regex mixed("mixed[0-9]+");
  const int mixed0 = m.index_of("mixed0");
  ASSERT_GT(mixed0, 0);
  // Keras's fine-tuning example for InceptionV3 (keras.io/api/applications: "we chose to train
  // the top 2 inception blocks, i.e. we will freeze the first 249 layers") relies on mixed8
  // being base.layers[248]: an independent check of the layer order.
  EXPECT_EQ(m.index_of("mixed8"), 248);
  EXPECT_EQ(m.layer(249).name(), "conv2d_80");
  int checked = 0;
  for (int n = 1; n <= m.base_layers(); ++n) {
    const auto [cut, first] = cut_for(m, n);
    const std::string what = "inception_v3 --unfreeze-last " + std::to_string(n);
    expect_dominating_cut(m, cut, first, what);
    if (first > mixed0 && first < m.base_layers()) {  // else phase 2 trains the head alone
      EXPECT_TRUE(std::regex_match(m.layer(cut).name(), mixed))
          << what << ": cut " << m.layer(cut).name();
      ++checked;
    }
    if (n == 10 || n == 40 || n == 100)
      std::cout << what << ": first trainable " << m.layer(first).name() << ", cut "
                << m.layer(cut).name() << "\n";
  }
  EXPECT_GT(checked, 200);  // a cut inside the base for most N
}

TEST(CacheCut, EveryBackboneCutsAtADominatingNode) {
  for (const BackboneInfo& b : backbones()) {
    Model m = build_network(config(b.id, b.min_size));
    for (int n = 1; n <= m.base_layers(); n += std::max(1, m.base_layers() / 40)) {
      const auto [cut, first] = cut_for(m, n);
      expect_dominating_cut(m, cut, first,
                            std::string(b.name) + " --unfreeze-last " + std::to_string(n));
    }
  }
}

}  // namespace
}  // namespace parafine
