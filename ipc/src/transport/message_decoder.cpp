#include "message_decoder.hpp"

#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/message.hpp>
#include <caf/rtti_pair.hpp>
#include <caf/uniform_type_info_map.hpp>

#include <cstdint>
#include <tuple>
#include <utility>

namespace troupe::ipc::detail {

namespace {

template <class... Ts, size_t... Is>
caf::mailbox_element_ptr decode_as(caf::deserializer& src, caf::strong_actor_ptr& sender,
                                   caf::message_id mid,
                                   caf::mailbox_element::forwarding_stack& stages, caf::error& err,
                                   std::index_sequence<Is...>) {
  std::tuple<Ts...> xs;
  if ((err = src(std::get<Is>(xs)...)))
    return nullptr;
  return caf::make_mailbox_element(std::move(sender), mid, std::move(stages),
                                   std::move(std::get<Is>(xs))...);
}

template <class... Ts>
caf::mailbox_element_ptr
decode_typed(caf::deserializer& src, caf::strong_actor_ptr& sender, caf::message_id mid,
             caf::mailbox_element::forwarding_stack& stages, caf::error& err) {
  return decode_as<Ts...>(src, sender, mid, stages, err, std::index_sequence_for<Ts...>{});
}

/// The built-in types a message's values most often have.
template <class F>
void for_each_builtin(F f) {
  f(int32_t{});
  f(int64_t{});
  f(uint32_t{});
  f(uint64_t{});
  f(double{});
  f(bool{});
  f(std::string{});
  f(caf::atom_value{});
  f(caf::error{});
}

} // namespace

template <class... Ts>
void message_decoder::add(caf::actor_system& sys) {
  std::string name = "@<>";
  for (auto& part : {sys.types().portable_name(caf::make_rtti_pair<Ts>())...}) {
    name += '+';
    name += part;
  }
  shapes_.emplace(std::move(name), &decode_typed<Ts...>);
}

message_decoder::message_decoder(caf::actor_system& sys) {
  for_each_builtin([&](auto x) {
    using value = decltype(x);
    add<value>(sys);
    add<caf::atom_value, value>(sys);
  });
}

caf::mailbox_element_ptr message_decoder::decode(caf::binary_deserializer& src,
                                                 caf::strong_actor_ptr& sender, caf::message_id mid,
                                                 caf::mailbox_element::forwarding_stack& stages,
                                                 caf::error& err) const {
  // A look at the type name, on a copy of the reader: a shape this decoder
  // does not know is read again, whole, by CAF.
  auto rest = src.remainder();
  caf::binary_deserializer peek{src.context(), rest};
  uint16_t nr = 0;
  std::string name;
  if (!peek.begin_object(nr, name) && nr == 0) {
    if (auto i = shapes_.find(name); i != shapes_.end()) {
      auto res = i->second(peek, sender, mid, stages, err);
      if (!err)
        err = peek.end_object();
      if (err)
        return nullptr;
      src.skip(rest.size() - peek.remaining());
      return res;
    }
  }
  caf::message msg;
  if ((err = src(msg)))
    return nullptr;
  return caf::make_mailbox_element(std::move(sender), mid, std::move(stages), std::move(msg));
}

} // namespace troupe::ipc::detail
