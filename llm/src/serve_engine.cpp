#include "aipe/llm/serve_engine.hpp"

#include <stdexcept>

namespace aipe::llm {

// The continuous-batching engine on the GPU model (StepEngine over llm/model.hpp's Model) is what this returns;
// this build has none yet, and says so rather than serving anything else.
ServeBackend make_gpu_engine(const ServeEngineOptions& o) {
  throw std::runtime_error("aipe serve --model " + o.model +
                           ": this build of aipe has no continuous-batching GPU engine (a StepEngine on the model) "
                           "to serve it with");
}

}  // namespace aipe::llm
