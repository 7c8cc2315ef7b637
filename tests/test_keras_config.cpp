// The Keras config parser (io/keras_config.hpp) and the layer factory (io/model_from_config.hpp)
// on hand-written configs: both serialisations of the same small graph, nesting, Sequential's
// implicit input, and every refusal naming the layer (shared layers, several outputs, loops,
// unknown inputs, Lambda, unknown classes, settings parafine does not run).
#include <gtest/gtest.h>

#include <string>

#include "parafine/io/graph_weights.hpp"
#include "parafine/io/keras_config.hpp"
#include "parafine/io/keras_config_writer.hpp"
#include "parafine/io/model_from_config.hpp"

namespace parafine {
namespace {

using json = nlohmann::json;

// A Keras 2 Functional entry: {"class_name", "config", "name", "inbound_nodes"}.
json k2_layer(const std::string& cls, const std::string& name, json config,
              const std::vector<std::string>& inputs, json kwargs = json::object()) {
  config["name"] = name;
  json node = json::array();
  for (const auto& in : inputs) node.push_back(json::array({in, 0, 0, kwargs}));
  return {{"class_name", cls},
          {"config", config},
          {"name", name},
          {"inbound_nodes", inputs.empty() ? json::array() : json::array({node})}};
}

json keras_tensor(const std::string& layer, int node = 0) {
  return {
      {"class_name", "__keras_tensor__"},
      {"config",
       {{"shape", {nullptr, 8, 8, 3}}, {"dtype", "float32"}, {"keras_history", {layer, node, 0}}}}};
}

// A Keras 3 Functional entry.
json k3_layer(const std::string& cls, const std::string& name, json config,
              const std::vector<std::string>& inputs) {
  config["name"] = name;
  json args = json::array();
  if (inputs.size() == 1) {
    args.push_back(keras_tensor(inputs[0]));
  } else if (inputs.size() > 1) {
    json list = json::array();
    for (const auto& in : inputs) list.push_back(keras_tensor(in));
    args.push_back(list);
  }
  return {{"module", "keras.layers"},
          {"class_name", cls},
          {"config", config},
          {"registered_name", nullptr},
          {"name", name},
          {"inbound_nodes", inputs.empty()
                                ? json::array()
                                : json::array({{{"args", args}, {"kwargs", json::object()}}})}};
}

json functional(const std::string& name, json layers, const std::string& in,
                const std::string& out) {
  return {{"class_name", "Functional"},
          {"config",
           {{"name", name},
            {"layers", layers},
            {"input_layers", json::array({json::array({in, 0, 0})})},
            {"output_layers", json::array({json::array({out, 0, 0})})}}}};
}

json small_graph_k2() {
  json layers = json::array(
      {k2_layer("InputLayer", "in", {{"batch_input_shape", {nullptr, 8, 8, 3}}}, {}),
       k2_layer(
           "Conv2D", "c1",
           {{"filters", 4}, {"kernel_size", {3, 3}}, {"padding", "same"}, {"activation", "relu"}},
           {"in"}),
       k2_layer("Conv2D", "c2", {{"filters", 4}, {"kernel_size", {1, 1}}}, {"in"}),
       k2_layer("Add", "add", json::object(), {"c1", "c2"}),
       k2_layer("GlobalAveragePooling2D", "gap", json::object(), {"add"}),
       k2_layer("Dense", "out", {{"units", 2}, {"activation", "softmax"}}, {"gap"})});
  return functional("m", layers, "in", "out");
}

json small_graph_k3() {
  json layers = json::array(
      {k3_layer("InputLayer", "in", {{"batch_shape", {nullptr, 8, 8, 3}}}, {}),
       k3_layer(
           "Conv2D", "c1",
           {{"filters", 4}, {"kernel_size", {3, 3}}, {"padding", "same"}, {"activation", "relu"}},
           {"in"}),
       k3_layer("Conv2D", "c2", {{"filters", 4}, {"kernel_size", {1, 1}}}, {"in"}),
       k3_layer("Add", "add", json::object(), {"c1", "c2"}),
       k3_layer("GlobalAveragePooling2D", "gap", json::object(), {"add"}),
       k3_layer("Dense", "out", {{"units", 2}, {"activation", "softmax"}}, {"gap"})});
  json m = functional("m", layers, "in", "out");
  m["module"] = "keras.src.models.functional";
  return m;
}

std::string error_of(const std::string& text) {
  try {
    parse_keras_config(text, "cfg");
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(KerasConfig, BothSerialisationsGiveTheSameGraph) {
  const KerasGraph a = parse_keras_config(small_graph_k2().dump(), "k2");
  const KerasGraph b = parse_keras_config(small_graph_k3().dump(), "k3");
  EXPECT_EQ(a.keras_major, 2);
  EXPECT_EQ(b.keras_major, 3);
  ASSERT_EQ(a.nodes.size(), 6u);
  ASSERT_EQ(b.nodes.size(), a.nodes.size());
  for (std::size_t i = 0; i < a.nodes.size(); ++i) {
    EXPECT_EQ(a.nodes[i].flat_name, b.nodes[i].flat_name);
    EXPECT_EQ(a.nodes[i].class_name, b.nodes[i].class_name);
    EXPECT_EQ(a.nodes[i].inputs, b.nodes[i].inputs) << a.nodes[i].name;
  }
  EXPECT_EQ(a.nodes[3].inputs, (std::vector<int>{1, 2}));  // add(c1, c2)
  EXPECT_EQ(a.output, 5);
  EXPECT_EQ(a.base_model(), -1);
  Model m = model_from_graph(a, 0, "k2");
  EXPECT_EQ(m.size(), 6);
  EXPECT_EQ(m.output_shape(5, 1)[1], 2);
  EXPECT_EQ(config_image_size(a), 8);
}

TEST(KerasConfig, WrittenConfigReadsBackToTheSameGraph) {
  const KerasGraph a = parse_keras_config(small_graph_k2().dump(), "k2");
  Model m = model_from_graph(a, 0, "k2");
  const KerasGraph b = parse_keras_config(keras3_model_config(a, m), "written");
  EXPECT_EQ(b.keras_major, 3);
  ASSERT_EQ(b.nodes.size(), a.nodes.size());
  for (std::size_t i = 0; i < a.nodes.size(); ++i) {
    EXPECT_EQ(a.nodes[i].flat_name, b.nodes[i].flat_name);
    EXPECT_EQ(a.nodes[i].inputs, b.nodes[i].inputs);
  }
  EXPECT_EQ(b.nodes[1].config["padding"], "same");
  EXPECT_EQ(b.nodes[1].config["activation"], "relu");
}

TEST(KerasConfig, NestedBaseCalledWithTrainingFalse) {
  json base_layers =
      json::array({k2_layer("InputLayer", "base_in",
                            {{"batch_input_shape", {nullptr, nullptr, nullptr, 3}}}, {}),
                   k2_layer("Conv2D", "conv", {{"filters", 4}, {"kernel_size", 3}}, {"base_in"}),
                   k2_layer("BatchNormalization", "bn", {{"axis", {3}}}, {"conv"})});
  json base = functional("base", base_layers, "base_in", "bn");
  base["name"] = "base";
  base["inbound_nodes"] =
      json::array({json::array({json::array({"rescale", 0, 0, {{"training", false}}})})});
  json outer =
      json::array({k2_layer("InputLayer", "in", {{"batch_input_shape", {nullptr, 8, 8, 3}}}, {}),
                   k2_layer("Rescaling", "rescale", {{"scale", 0.5}, {"offset", -1}}, {"in"}), base,
                   k2_layer("GlobalAveragePooling2D", "gap", json::object(), {"base"}),
                   k2_layer("Dense", "out", {{"units", 2}, {"activation", "softmax"}}, {"gap"})});
  const KerasGraph g = parse_keras_config(functional("outer", outer, "in", "out").dump(), "nested");
  ASSERT_EQ(g.nodes.size(), 7u);  // in, rescale, base_in, conv, bn, gap, out
  ASSERT_EQ(g.models.size(), 2u);
  EXPECT_EQ(g.base_model(), 1);
  EXPECT_EQ(g.models[1].layers.size(), 3u);             // base.layers includes its InputLayer
  EXPECT_EQ(g.nodes[2].inputs, (std::vector<int>{1}));  // base_in passes rescale's tensor on
  EXPECT_TRUE(g.nodes[4].inference_only);
  EXPECT_FALSE(g.nodes[5].inference_only);
  EXPECT_EQ(g.nodes[5].inputs, (std::vector<int>{4}));  // gap reads the base's output
  Model m = model_from_graph(g, 0, "nested");
  EXPECT_EQ(m.base_begin(), 2);
  EXPECT_EQ(m.base_layers(), 3);
  // Keras 3 paths: layers/functional/layers/conv2d for the nested conv.
  bool found = false;
  for (const auto& [path, node] : keras3_weight_paths(g))
    found |= path == "layers/functional/layers/conv2d" &&
             g.nodes[static_cast<std::size_t>(node)].name == "conv";
  EXPECT_TRUE(found);
}

TEST(KerasConfig, SequentialWithoutInputLayerGetsKeras2sImplicitInput) {
  json seq = {{"class_name", "Sequential"},
              {"config",
               {{"name", "s"},
                {"layers",
                 {{{"class_name", "Conv2D"},
                   {"config",
                    {{"name", "c"},
                     {"filters", 2},
                     {"kernel_size", 3},
                     {"batch_input_shape", {nullptr, 6, 6, 3}}}}},
                  {{"class_name", "Flatten"}, {"config", {{"name", "f"}}}},
                  {{"class_name", "Dense"},
                   {"config", {{"name", "d"}, {"units", 1}, {"activation", "sigmoid"}}}}}}}}};
  const KerasGraph g = parse_keras_config(seq.dump(), "seq");
  ASSERT_EQ(g.nodes.size(), 4u);
  EXPECT_EQ(g.nodes[0].name, "c_input");
  EXPECT_EQ(g.models[0].layers.size(), 3u);  // Sequential.layers leaves the InputLayer out
  Model m = model_from_graph(g, 0, "seq");
  EXPECT_EQ(m.output_shape(3, 1)[1], 1);
  json unbuilt = seq;
  unbuilt["config"]["layers"][0]["config"].erase("batch_input_shape");
  EXPECT_NE(error_of(unbuilt.dump()).find("never built"), std::string::npos);
}

TEST(KerasConfig, RefusalsNameTheLayer) {
  EXPECT_NE(error_of("{not json").find("cfg: not JSON"), std::string::npos);
  EXPECT_NE(error_of(R"({"class_name": "MyModel", "config": {}})").find("'MyModel'"),
            std::string::npos);
  json shared = small_graph_k2();
  shared["config"]["layers"][2]["inbound_nodes"].push_back(
      shared["config"]["layers"][2]["inbound_nodes"][0]);
  EXPECT_NE(error_of(shared.dump()).find("layer 'c2': is called 2 times"), std::string::npos);
  json missing = small_graph_k2();
  missing["config"]["layers"][4]["inbound_nodes"][0][0][0] = "nowhere";
  EXPECT_NE(error_of(missing.dump()).find("layer 'gap': reads 'nowhere'"), std::string::npos);
  json loop = small_graph_k2();
  loop["config"]["layers"][1]["inbound_nodes"][0][0][0] = "add";
  EXPECT_NE(error_of(loop.dump()).find("loop"), std::string::npos);
  json second_output = small_graph_k2();
  second_output["config"]["layers"][4]["inbound_nodes"][0][0][2] = 1;
  EXPECT_NE(error_of(second_output.dump()).find("output 1 of 'add'"), std::string::npos);
}

TEST(KerasConfig, UnsupportedLayersAreAllListed) {
  json g = small_graph_k2();
  g["config"]["layers"][1] = k2_layer("Lambda", "c1", {{"function", "..."}}, {"in"});
  g["config"]["layers"][2]["config"]["dilation_rate"] = {2, 2};
  g["config"]["layers"][4] = k2_layer("MyPooling", "gap", json::object(), {"add"});
  const KerasGraph graph = parse_keras_config(g.dump(), "cfg");
  try {
    model_from_graph(graph, 0, "m.keras: config.json");
    FAIL() << "built a model with a Lambda layer";
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("m.keras: config.json: parafine cannot build 3 layer(s)"),
              std::string::npos)
        << what;
    for (const char* says :
         {"layer 'c1' (Lambda): a Lambda layer holds Python code",
          "layer 'c2' (Conv2D): dilation_rate [2,2]",
          "layer 'gap' (MyPooling): class 'MyPooling' is not one parafine implements"})
      EXPECT_NE(what.find(says), std::string::npos) << says << "\n" << what;
  }
}

}  // namespace
}  // namespace parafine
