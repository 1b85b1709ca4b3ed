// The opt-in op profile (autograd/profiler.h): forward ops, backward nodes and summed gradients get
// their own entries, each charged once per op, the totals come back largest first, and nothing is
// recorded while the profile is off.
#include "test_util.h"

#include <luna/autograd/profiler.h>

using namespace luna;

namespace {

const autograd::OpTime* find(const std::vector<autograd::OpTime>& times, const std::string& name) {
  for (const autograd::OpTime& t : times)
    if (t.name == name) return &t;
  return nullptr;
}

}  // namespace

TEST_CASE("the op profile charges forward ops, backward nodes and gradient sums", "[profiler]") {
  const Tensor x = randn({300, 40}).requires_grad_(true);
  autograd::start_op_profile();
  REQUIRE(autograd::op_profile_on());
  const Tensor y = (x * x).exp();   // x used twice: its gradients meet and are summed
  y.sum().backward();
  autograd::op_profile_mark("step", "custom");
  const std::vector<autograd::OpTime> times = autograd::stop_op_profile();
  REQUIRE_FALSE(autograd::op_profile_on());
  for (const char* name : {"forward mul", "forward exp", "forward sum", "backward mul", "backward exp",
                           "backward sum", "step custom"}) {
    INFO(name);
    const autograd::OpTime* t = find(times, name);
    REQUIRE(t != nullptr);
    REQUIRE(t->calls == 1);
    REQUIRE(t->cpu_ms >= 0);
    REQUIRE(t->wall_ms >= 0);
  }
  // mul's backward hands x two gradients (one per operand).
  REQUIRE(find(times, "backward (sum of gradients)") != nullptr);
  for (size_t i = 1; i < times.size(); ++i) REQUIRE(times[i - 1].cpu_ms >= times[i].cpu_ms);

  // Off: marks and ops leave no trace in the next profile.
  autograd::op_profile_mark("step", "ignored");
  (x * 2.0).sum().backward();
  autograd::start_op_profile();
  REQUIRE(autograd::stop_op_profile().empty());
}
