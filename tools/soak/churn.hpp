// The churn: nodes that join and leave a group in a loop, more of them than
// its slots can hold while the slots of those that left rest (tracker
// issue 18).
#pragma once

namespace troupe_soak {

/// Keeps `lanes` child nodes coming and going in a group of 64 slots for
/// `seconds`: each child joins, asks this process's echo once, leaves and
/// exits, and is replaced at once. Checks that every child joined and exited
/// with status 0, that the slots were reused, and that nothing leaked (this
/// process's descriptors, the group's files). The exit status: 0 when all
/// holds.
int run_churn(double seconds, int lanes);

/// A child of the churn (`--role churn`).
int run_churn_node();

} // namespace troupe_soak
