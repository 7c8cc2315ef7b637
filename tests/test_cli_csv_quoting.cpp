// `parafine predict` quotes class names in its CSV as RFC 4180 has it (issue 11): a comma, a
// quote or a line break in a class name must not shift the columns, in the header (p_<name>)
// nor in the predicted column.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "parafine/io/model_file.hpp"
#include "parafine/model/initializers.hpp"
#include "parafine/model/backbone.hpp"
#include "run_binary.hpp"

namespace fs = std::filesystem;

namespace parafine {
namespace {

TEST(CliCsvQuoting, ClassNamesWithCommaQuoteAndLineBreakKeepTheColumns) {
  const fs::path dir =
      fs::temp_directory_path() / ("parafine_csv_quoting_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::vector<std::string> names = {"tabby, striped", "the \"good\" dog", "red\nfox"};
  // The model has no class names, so predict takes the dataset's.
  Model m = build_network(NetworkConfig{32, 3, 4, 8, 3});
  keras_initialize(m, 5);
  save_keras_model(m, (dir / "model.h5").string());
  const int n = 4;
  test_util::write_h5_images((dir / "data.h5").string(), n, 32, 32,
                             test_util::random_pixels(n * 32 * 32 * 3, 3), {0, 1, 2, 0}, names);
  const std::string csv = (dir / "preds.csv").string();
  const CommandResult r =
      run_parafine("predict --threads 1 --model " + (dir / "model.h5").string() + " --input " +
                   (dir / "data.h5").string() + " --output " + csv);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto rows = test_util::read_csv_rfc4180(csv);
  ASSERT_EQ(rows.size(), static_cast<std::size_t>(n + 1)) << r.output;
  EXPECT_EQ(rows[0], (std::vector<std::string>{"index", "p_tabby, striped", "p_the \"good\" dog",
                                               "p_red\nfox", "predicted"}));
  for (int i = 1; i <= n; ++i) {
    ASSERT_EQ(rows[i].size(), 5u) << "row " << i;
    EXPECT_NE(std::find(names.begin(), names.end(), rows[i][4]), names.end())
        << "row " << i << " predicted '" << rows[i][4] << "'";
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace parafine
