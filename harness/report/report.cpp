#include "harness/report/report.h"

#include <filesystem>

#include "harness/compare/run_result.h"
#include "harness/core/atomic_file.h"
#include "harness/report/diagnosis_view.h"
#include "harness/report/html.h"
#include "harness/report/localize_view.h"
#include "harness/report/markdown.h"

namespace parity::report {

ReportPaths WriteReports(const std::string& dir) {
  compare::RunOutputs outputs = compare::ReadRunOutputs(dir);
  std::optional<LocalizeView> localize = ReadLocalize(dir, outputs.summary.run_id);
  std::optional<DiagnosisView> diagnosis = ReadDiagnosis(dir);
  ReportPaths paths{(std::filesystem::path(dir) / "report.md").string(),
                    (std::filesystem::path(dir) / "report.html").string()};
  WriteFileAtomic(paths.markdown, RenderMarkdown(outputs, localize, diagnosis));
  WriteFileAtomic(paths.html, RenderHtml(outputs, localize, diagnosis));
  return paths;
}

}  // namespace parity::report
