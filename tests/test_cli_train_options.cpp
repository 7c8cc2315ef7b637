// `parafine train` refuses bad options before any data or MPI work: a message naming the
// option and exit code 2.
#include <gtest/gtest.h>

#include "run_binary.hpp"

namespace parafine {
namespace {

TEST(TrainOptions, BadOptionsExitTwoNamingTheOption) {
  // --train names a path that does not exist: every case must fail on its option first.
  const std::string train = "train --train /nonexistent/data.h5 ";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--phase1-epochs -1", "--phase1-epochs"},
      {"--phase2-epochs -3", "--phase2-epochs"},
      {"--phase1-lr -0.1", "--phase1-lr"},
      {"--phase2-lr nan", "--phase2-lr"},
      {"--unfreeze-last 176", "--unfreeze-last"},
      {"--unfreeze-from conv9_block1_1_conv", "--unfreeze-from"},
      {"--unfreeze-last 5 --unfreeze-from conv5_block3_1_conv", "--unfreeze-from"},
      {"--resume", "--resume"},
      {"--resume --checkpoint-dir /nonexistent/ck", "--resume"},
      {"--batch-size 0", "--batch-size"},
      {"--bn-mode average", "--bn-mode"},
      {"--bucket-mb 0", "--bucket-mb"},
      {"--frobnicate 1", "frobnicate"},
      {"--cache on", "--cache"},
      {"--cache-mem lots", "--cache-mem"},
      {"--cache-mem 5X", "--cache-mem"},
      {"--cache-mem -1G", "--cache-mem"},
      {"--cache-dir /nonexistent/spill", "--cache-dir"},
      {"--cache-dir /etc/hostname", "--cache-dir"},
      {"--precision float16", "--precision"},
      {"--precision mixed_float16", "--precision"},
  };
  for (const auto& [args, option] : cases) {
    const CommandResult r = run_parafine(train + args);
    std::cout << args << " -> exit " << r.exit_code << ": " << r.output;
    EXPECT_EQ(r.exit_code, 2) << args;
    EXPECT_NE(r.output.find(option), std::string::npos) << args << ": " << r.output;
    EXPECT_EQ(r.output.find("/nonexistent/data.h5"), std::string::npos)
        << args << " reached the data first";
  }
  const CommandResult missing = run_parafine("train --phase1-epochs 1");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.output.find("--train"), std::string::npos) << missing.output;
}

}  // namespace
}  // namespace parafine
