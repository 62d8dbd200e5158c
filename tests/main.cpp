#define DOCTEST_CONFIG_IMPLEMENT
#include "troupe/ipc/process_pool.hpp"

#include <doctest/doctest.h>

int main(int argc, char** argv) {
  // The process pool tests start this program again as their workers.
  if (troupe::ipc::process_pool::is_worker())
    return troupe::ipc::process_pool::run_worker(argc, argv);
  return doctest::Context{argc, argv}.run();
}
