#pragma once

// What the guide's statement snippets (`<!-- snippet: body -->`) may use
// without including it: both layers of troupe, CAF, and the standard
// headers the pages use. Each snippet runs in a function that has `sys`,
// `self` and `ctx` (see extract.awk).

#include <troupe/atoms.hpp>
#include <troupe/bounded_queue.hpp>
#include <troupe/configure.hpp>
#include <troupe/daemon.hpp>
#include <troupe/event.hpp>
#include <troupe/executor.hpp>
#include <troupe/future.hpp>
#include <troupe/gather.hpp>
#include <troupe/generator.hpp>
#include <troupe/guarded.hpp>
#include <troupe/ipc/host_pool.hpp>
#include <troupe/ipc/isolated.hpp>
#include <troupe/ipc/managed_dict.hpp>
#include <troupe/ipc/node.hpp>
#include <troupe/ipc/process_groups.hpp>
#include <troupe/ipc/program.hpp>
#include <troupe/ipc/shared_memory.hpp>
#include <troupe/ipc/sync.hpp>
#include <troupe/report_errors.hpp>
#include <troupe/scoped_resource.hpp>
#include <troupe/semaphore.hpp>
#include <troupe/supervisor.hpp>
#include <troupe/watchdog.hpp>
#include <troupe/worker_pool.hpp>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <unistd.h>

#include <chrono>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>
