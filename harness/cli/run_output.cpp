#include "harness/cli/run_output.h"

#include <spdlog/spdlog.h>

#include "harness/convert/internlm2_to_llama.h"
#include "harness/report/report.h"

namespace parity::cli {

compare::SuiteOptions SuiteWritingTo(const std::string& out_dir) {
  compare::SuiteOptions suite;
  suite.out_dir = out_dir;
  suite.convert = [](const std::string& src, const std::string& dst) {
    convert::ConvertInternLM2ToLlama(src, dst);
  };
  return suite;
}

int FinishRunWithReports(const std::string& out_dir, const compare::RunOutputs& outputs) {
  int exit_code = compare::FinishRun(out_dir, outputs);
  report::ReportPaths paths = report::WriteReports(out_dir);
  spdlog::info("wrote {} and {}", paths.markdown, paths.html);
  return exit_code;
}

}  // namespace parity::cli
