#include "migrate/rules.hpp"

#include "migrate/config.hpp"
#include "migrate/scheduler.hpp"
#include "util/text.hpp"

#include <algorithm>
#include <atomic>
#include <deque>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <system_error>
#include <thread>

namespace migrate {

namespace {

using registry::Reference;

/// Whether another run of a rule may get past this error of its listing.
bool transient(const http::Error& e) { return e.retryable() || e.kind == http::ErrorKind::cancelled; }

/// A message about one of the eight rules of the images file format (README), said so that "rule 3"
/// is not read as the third rule of the user's file.
std::string rule_text(int n, const std::string& what) {
  return what + " (rule " + std::to_string(n) + " of the images file format, see the README)";
}

/// A rule that cannot run, and why.
http::Error invalid(const std::string& message) { return http::make_error(http::ErrorKind::invalid, message); }

/// Parses a source and fills in --default-source-registry/--default-source-namespace.
http::Result<Reference> parse_source(const std::string& text, const Defaults& d) {
  if (text.empty())
    return invalid(rule_text(4, "the source must not be empty"));
  if (Reference::is_layout(text)) {
    auto layout = Reference::parse_layout(text);
    if (!layout)
      return layout.error();
    return *layout;
  }
  if (text.find('*') != std::string::npos || text.back() == '/')
    return invalid(rule_text(1, "a rule copies exactly one repository, not a whole namespace or registry"));
  auto ref = Reference::parse_explicit(text);
  if (!ref)
    return ref.error();
  Reference r = *ref;
  if (r.registry.empty() && !d.source_registry.empty()) {
    if (r.repository.find('/') == std::string::npos && !d.source_namespace.empty())
      r.repository = d.source_namespace + "/" + r.repository;
    r.registry = d.source_registry;
  } else if (!r.registry.empty() && r.repository.find('/') == std::string::npos && !d.source_namespace.empty()) {
    r.repository = d.source_namespace + "/" + r.repository;
  }
  if (r.registry.empty() || r.repository.find('/') == std::string::npos)
    return invalid(rule_text(3, "source \"" + text +
                                   "\" must be registry/namespace/repository (or give "
                                   "--default-source-registry/--default-source-namespace)"));
  return r;
}

http::Result<Reference> parse_destination(const std::string& text, const Reference& source, const Defaults& d) {
  if (Reference::is_layout(text)) {
    auto layout = Reference::parse_layout(text);
    if (!layout)
      return layout.error();
    if (!layout->digest.empty())
      return invalid("destination \"" + text + "\" must not contain a digest (the digest is preserved anyway)");
    return *layout;
  }
  if (text.empty() && !source.layout.empty())
    return invalid(rule_text(8, "a source in an OCI layout needs a destination"));
  if (text.empty()) {
    // Rule 8: default registry/namespace, same repository (path below the namespace) and tag.
    if (d.registry.empty() || d.ns.empty())
      return invalid(rule_text(8, "an empty destination needs a default registry and namespace (--registry/--namespace "
                                 "or DEFAULT_REGISTRY/DEFAULT_NAMESPACE)"));
    Reference r;
    r.registry = d.registry;
    r.repository = d.ns + "/" + source.repository.substr(source.repository.find('/') + 1);
    r.original = r.registry + "/" + r.repository;
    return r;
  }
  if (text.find('*') != std::string::npos || text.back() == '/')
    return invalid(rule_text(1, "a destination is exactly one repository, not a whole namespace or registry"));
  auto ref = Reference::parse_explicit(text);
  if (!ref)
    return ref.error();
  if (ref->registry.empty() || ref->repository.find('/') == std::string::npos)
    return invalid(rule_text(3, "destination \"" + text + "\" must be registry/namespace/repository"));
  if (!ref->digest.empty()) {
    // `config` writes a workload pinned by digest as ".../app:1.25@sha256:..." on both sides (what
    // `rewrite` then points the workload at): the source's own digest, which the copy keeps anyway.
    if (ref->digest != source.digest)
      return invalid("destination \"" + text + "\" must not contain a digest other than the source's (the digest is "
                    "preserved anyway)");
    ref->digest.clear();
  }
  return *ref;
}

Rule::Resolved resolve(const Rule& rule, const Defaults& d) {
  Rule::Resolved r;
  auto src = parse_source(rule.source, d);
  if (!src) {
    r.error = src.error().message;
    return r;
  }
  r.source = *src;
  auto dst = parse_destination(rule.destination, r.source, d);
  if (!dst) {
    r.error = dst.error().message;
    return r;
  }
  r.destination = *dst;
  return r;
}

/// The rule's parse: the one it carries, or (a rule not passed through resolve_rules) one made now.
Rule::Resolved resolved(const Rule& rule, const Defaults& d) { return rule.resolved ? *rule.resolved : resolve(rule, d); }

} // namespace

void resolve_rules(std::vector<Rule>& rules, const Defaults& defaults) {
  for (auto& rule : rules)
    rule.resolved = resolve(rule, defaults);
}

namespace {

/// Reads {"regex", "exclude", "semver", "latest"}; "" on success, else why not.
std::string read_filter(const nlohmann::json& j, TagFilter& f) {
  if (!j.is_object())
    return "\"tags\" must be an object with regex, exclude, semver or latest";
  for (const auto& item : j.items()) {
    const auto& k = item.key();
    const auto& v = item.value();
    if (k == "latest") {
      if (!v.is_number_integer() || v.get<long>() < 1 || v.get<long>() > 100000)
        return "tags.latest must be a positive number";
      f.latest = v.get<int>();
    } else if (k == "regex" || k == "exclude" || k == "semver") {
      if (!v.is_string())
        return "tags." + k + " must be a string";
      (k == "regex" ? f.regex : k == "exclude" ? f.exclude : f.semver) = v.get<std::string>();
    } else {
      return "unknown field tags." + k + " (known: regex, exclude, semver, latest)";
    }
  }
  return f.validate();
}

} // namespace

namespace {
/// image-syncer's several tags in one source, "repo:1,2,3": the repository and the tags; an empty
/// list for any other source.
std::pair<std::string, std::vector<std::string>> listed_tags(const std::string& source) {
  if (registry::Reference::is_layout(source))
    return {}; // a layout directory may have a comma in its name
  const auto colon = source.rfind(':');
  const auto slash = source.rfind('/');
  if (colon == std::string::npos || (slash != std::string::npos && colon < slash) ||
      source.find('@') != std::string::npos || source.find(',', colon) == std::string::npos)
    return {};
  std::vector<std::string> tags;
  std::string rest = source.substr(colon + 1);
  for (std::size_t start = 0;;) {
    auto comma = rest.find(',', start);
    tags.push_back(rest.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos)
      break;
    start = comma + 1;
  }
  return {source.substr(0, colon), tags};
}

/// Whether a destination names a tag or digest. Without a '/' it is no reference at all (a host
/// "127.0.0.1:9"): rule 3 says so later.
bool names_tag(const std::string& destination) {
  if (registry::Reference::is_layout(destination)) {
    auto layout = registry::Reference::parse_layout(destination);
    return layout && (!layout->tag.empty() || !layout->digest.empty());
  }
  const auto slash = destination.rfind('/');
  if (slash == std::string::npos)
    return false;
  return destination.find(':', slash) != std::string::npos || destination.find('@') != std::string::npos;
}
} // namespace

std::vector<Rule> read_rules(const nlohmann::json& images, const std::string& file, std::vector<RuleError>& errors) {
  if (!images.is_object())
    throw ConfigError(file + ": must be an object mapping source images to destinations, not " +
                      std::string(images.type_name()));
  std::vector<Rule> rules;
  for (const auto& item : images.items()) {
    const std::string& key = item.key();
    const nlohmann::json* value = &item.value();
    static const std::string no_credentials =
        "an '@' that starts no digest (name@sha256:<64 hex>): a reference cannot hold credentials (user:password@), "
        "put them in the auth file";
    if (registry::has_userinfo(key)) {
      errors.push_back({registry::without_userinfo(key), no_credentials}); // never repeated, anywhere
      continue;
    }
    Rule base{key, "", {}, key, item.value()};
    // image-syncer's "repo:/regex/" form.
    if (auto colon = key.find(":/"); colon != std::string::npos && key.size() > colon + 2 && key.back() == '/' &&
                                     key.find('/', colon + 2) == key.size() - 1) {
      base.source = key.substr(0, colon);
      base.tags.regex = key.substr(colon + 2, key.size() - colon - 3);
      if (auto why = base.tags.validate(); !why.empty()) {
        errors.push_back({key, why});
        continue;
      }
    }
    if (value->is_object()) {
      if (auto t = value->find("tags"); t != value->end()) {
        if (auto why = read_filter(*t, base.tags); !why.empty()) {
          errors.push_back({key, why});
          continue;
        }
      }
      bool unknown = false;
      for (const auto& field : value->items())
        if (field.key() != "tags" && field.key() != "destination" && !unknown) {
          errors.push_back({key, "unknown field \"" + field.key() + "\" (known: destination, tags)"});
          unknown = true;
        }
      if (unknown)
        continue;
      auto d = value->find("destination");
      static const nlohmann::json none;
      value = d == value->end() ? &none : &*d;
    }
    // Named, not a structured binding: the lambda below captures them (clang 14 cannot capture bindings).
    const auto listed = listed_tags(base.source);
    const std::string& repository = listed.first;
    const auto& tag_list = listed.second;
    if (std::find(tag_list.begin(), tag_list.end(), "") != tag_list.end()) {
      errors.push_back({key, "empty tag in the list \"" + base.source.substr(repository.size() + 1) + "\""});
      continue;
    }
    auto add = [&](std::string destination) {
      if (registry::has_userinfo(destination)) {
        errors.push_back({key, "destination \"" + registry::without_userinfo(destination) + "\": " + no_credentials});
        return;
      }
      if (tag_list.empty()) {
        Rule r = base;
        r.destination = std::move(destination);
        rules.push_back(std::move(r));
        return;
      }
      // image-syncer's "repo:1,2,3": one rule per tag, each keeping its tag at the destination.
      if (names_tag(destination)) {
        errors.push_back({key, "a source with several tags needs a destination without tag (each keeps its own)"});
        return;
      }
      for (const auto& tag : tag_list) {
        Rule r = base;
        r.source = repository + ":" + tag;
        r.destination = destination;
        rules.push_back(std::move(r));
      }
    };
    if (value->is_null()) {
      add("");
    } else if (value->is_string()) {
      add(value->get<std::string>());
    } else if (value->is_array()) {
      if (value->empty())
        errors.push_back({key, rule_text(4, "the list of destinations is empty")});
      for (const auto& d : *value) {
        if (d.is_string())
          add(d.get<std::string>());
        else if (d.is_null())
          add("");
        else
          errors.push_back({key, "each destination must be a string, not " + std::string(d.type_name())});
      }
    } else {
      errors.push_back({key, "the destination must be a string, a list of strings or an object, not " +
                                 std::string(value->type_name())});
    }
  }
  return rules;
}

std::vector<Rule> rules_for_shard(const std::vector<Rule>& rules, const Defaults& defaults, int index, int count) {
  std::vector<Rule> mine;
  for (const auto& rule : rules) {
    int shard = 0;
    // Keyed by where the rule writes: every writer of a destination tag is in one shard, which
    // then sees two of them collide (expand_rules).
    if (const auto r = resolved(rule, defaults); r.error.empty()) {
      std::uint64_t h = 1469598103934665603ull;
      for (unsigned char c : r.destination.name()) {
        h ^= c;
        h *= 1099511628211ull;
      }
      shard = static_cast<int>(h % static_cast<std::uint64_t>(count));
    }
    if (shard == index)
      mine.push_back(rule);
  }
  return mine;
}

namespace {

/// The tag lists of every repository named by a rule without tag or digest, fetched ahead on the
/// scheduler's lookups lane in the order of the rules (as many at a time as the lane runs, at most
/// `ahead` rules beyond the one being expanded). A rule waits only for its own repository, so the
/// first rules' images are being copied while later repositories are still listed.
class TagPrefetch {
public:
  using TagList = http::Result<std::vector<std::string>>;

  TagPrefetch(const std::vector<Rule>& rules, const Defaults& defaults, const TagLister& list_tags, Scheduler& scheduler)
      : m_list(list_tags), m_scheduler(scheduler) {
    for (const auto& rule : rules) {
      const auto r = resolved(rule, defaults);
      const Reference& src = r.source;
      if (!r.error.empty() || !src.tag.empty() || !src.digest.empty() || !r.destination.tag.empty())
        continue; // not a rule of every tag, or one refused before its list is needed
      auto [it, fresh] = m_index.try_emplace(src.name(), m_wanted.size());
      if (fresh) {
        m_wanted.push_back(src);
        m_uses.push_back(0);
        m_promises.emplace_back();
        m_lists.push_back(m_promises.back().get_future());
      }
      ++m_uses[it->second];
    }
    start_until(ahead);
  }
  ~TagPrefetch() {
    m_stop = true;
    for (auto& job : m_jobs) // they refer to this object
      job.wait();
  }

  /// The tag list of a repository named by a rule; throws what the lister threw. Asked once per
  /// rule naming it, in the rules' order: the last rule to ask takes it (a list is not kept once
  /// its rules are expanded), and each ask starts the lists of the next rules.
  TagList get(const std::string& name) {
    const std::size_t i = m_index.at(name);
    if (m_uses[i] == 0)
      throw std::logic_error("TagPrefetch: the list of " + name + " was asked more often than rules name it");
    start_until(i + 1 + ahead);
    m_lists[i].wait();
    if (--m_uses[i] > 0)
      return m_lists[i].get();
    TagList list = m_lists[i].get();
    m_lists[i] = {};
    // The promise shares the list's state too; it is let go once its job has returned (a job
    // may still be inside set_value, waking this thread, when the list is ready).
    m_jobs[i].wait();
    m_promises[i] = {};
    return list;
  }

private:
  /// Lists listed ahead of the rule being expanded: enough to keep the lookups lane busy, few
  /// enough that a catalogue's lists are not all held at once.
  static constexpr std::size_t ahead = 32;

  void start_until(std::size_t end) {
    for (end = std::min(end, m_wanted.size()); m_started < end; ++m_started)
      m_jobs.push_back(m_scheduler.submit(Scheduler::Lane::lookups, [this, i = m_started] {
        if (m_stop) // an exception left the rules: no new lists
          return m_promises[i].set_exception(std::make_exception_ptr(std::runtime_error("listing abandoned")));
        try {
          m_promises[i].set_value(m_list(m_wanted[i]));
        } catch (...) {
          m_promises[i].set_exception(std::current_exception());
        }
      }));
  }

  const TagLister& m_list;
  Scheduler& m_scheduler;
  std::vector<Reference> m_wanted;                  ///< each repository to list, in the rules' order
  std::map<std::string, std::size_t> m_index;       ///< its name -> its place in m_wanted
  std::vector<std::size_t> m_uses;                  ///< rules yet to ask for it
  std::deque<std::promise<TagList>> m_promises;
  std::deque<std::shared_future<TagList>> m_lists;
  std::size_t m_started = 0;
  std::atomic<bool> m_stop{false};
  std::vector<std::future<void>> m_jobs;
};

} // namespace

namespace {
/// The tags of `listed` that follow the distribution grammar; a RuleError for each other one.
std::vector<std::string> valid_tags(const std::vector<std::string>& listed, const Reference& src, const Rule& rule,
                                    std::vector<RuleError>& errors) {
  std::vector<std::string> out;
  out.reserve(listed.size());
  for (const auto& tag : listed) {
    if (registry::valid_tag(tag))
      out.push_back(tag);
    else
      errors.push_back({rule.name(), src.name() + " lists the tag \"" + util::escape_control(tag.substr(0, 200)) +
                                         "\", which is not a tag name ([A-Za-z0-9_][A-Za-z0-9._-]{0,127}): skipped"});
  }
  return out;
}
} // namespace

std::vector<Rule> expand_namespaces(const std::vector<Rule>& rules, const Defaults& defaults,
                                    const CatalogLister& list_catalog, std::vector<RuleError>& errors) {
  std::vector<Rule> out;
  std::map<std::string, http::Result<std::vector<std::string>>> catalogs;
  for (const auto& rule : rules) {
    if (rule.source.size() < 3 || rule.source.compare(rule.source.size() - 2, 2, "/*") != 0) {
      out.push_back(rule);
      continue;
    }
    if (!list_catalog) {
      out.push_back(rule); // expand_rules reports rule 1
      continue;
    }
    std::string prefix = rule.source.substr(0, rule.source.size() - 2); // registry/namespace
    auto slash = prefix.find('/');
    std::string dst_prefix = rule.destination;
    if (!dst_prefix.empty() && (dst_prefix.size() < 3 || dst_prefix.compare(dst_prefix.size() - 2, 2, "/*") != 0)) {
      errors.push_back({rule.name(), rule_text(1, "a rule copies one repository, or a whole namespace "
                                                  "\"registry/namespace/*\" to a whole namespace \"registry/namespace/*\" "
                                                  "(or \"\")")});
      continue;
    }
    if (slash == std::string::npos || !registry::looks_like_registry(prefix.substr(0, slash))) {
      errors.push_back({rule.name(), "a whole-namespace rule is registry/namespace/* (the registry first)"});
      continue;
    }
    if (dst_prefix.empty() && (defaults.registry.empty() || defaults.ns.empty())) {
      // Once for the rule, before any listing; not once per repository found.
      errors.push_back({rule.name(), rule_text(8, "an empty destination needs a default registry and namespace "
                                                  "(--registry/--namespace or DEFAULT_REGISTRY/DEFAULT_NAMESPACE)")});
      continue;
    }
    std::string host = prefix.substr(0, slash), ns = prefix.substr(slash + 1);
    auto it = catalogs.find(host + "|" + ns);
    if (it == catalogs.end())
      it = catalogs.emplace(host + "|" + ns, list_catalog(host, ns)).first;
    if (!it->second) {
      errors.push_back({rule.name(), it->second.error().message, transient(it->second.error()) ? rule.spec : std::nullopt});
      continue;
    }
    std::size_t found = 0;
    for (const auto& repo : *it->second) {
      if (repo.compare(0, ns.size() + 1, ns + "/") != 0)
        continue;
      if (!registry::valid_repository(repo)) { // the registry's data, never a path
        errors.push_back({rule.name(), "the catalog of " + host + " lists \"" + util::escape_control(repo.substr(0, 300)) +
                                           "\", which is not a repository name: skipped"});
        continue;
      }
      Rule r = rule;
      r.key = rule.name();
      r.source = host + "/" + repo;
      std::string below = repo.substr(ns.size() + 1);
      if (dst_prefix.empty())
        r.destination = defaults.registry + "/" + defaults.ns + "/" + below;
      else
        r.destination = dst_prefix.substr(0, dst_prefix.size() - 1) + below;
      out.push_back(std::move(r));
      ++found;
    }
    if (found == 0)
      errors.push_back({rule.name(), "no repository below " + prefix + " in the catalog of " + host});
  }
  return out;
}

std::vector<Reference> rule_endpoints(const std::vector<Rule>& rules, const Defaults& defaults) {
  std::vector<Reference> out;
  for (const auto& rule : rules) {
    auto r = resolved(rule, defaults);
    if (!r.error.empty())
      continue; // expand_rules reports it
    if (r.source.tag.empty() && r.source.digest.empty() && !r.destination.tag.empty())
      continue; // a rule 6 error, reported by expand_rules: nothing of it will run
    out.push_back(std::move(r.source));
    out.push_back(std::move(r.destination));
  }
  return out;
}

namespace {

/// Who writes each destination tag, kept for the whole expansion. A catalogue of 100,000 tags goes
/// through here, so an entry is small: repository names are kept once, and what most tasks lack (a
/// source tag other than the destination's, digests, other sources seen) is kept apart.
class Writers {
public:
  /// What becomes of a task whose destination has a tag: copied (its first writer, or one that
  /// copies the same image), dropped (a source seen for that tag already: accepted or refused
  /// then), or refused (another image writes that tag: `why` says which).
  enum class Verdict { copy, repeat, refuse };
  Verdict check(const ImageTask& t, const Rule* rule, std::string& why) {
    const Reference& src = t.source;
    const Reference& dst = t.destination;
    auto [it, fresh] =
        m_writers.try_emplace({intern(dst.name()), dst.digest.empty() ? dst.tag : dst.tag + "@" + dst.digest});
    Writer& first = it->second;
    if (fresh) {
      first.name = intern(src.name());
      first.rule = rule;
      if (src.tag != dst.tag || !src.digest.empty())
        first.rare = std::make_unique<Rare>(Rare{src.tag, src.digest, src.digest, {}});
      return Verdict::copy;
    }
    const std::string& first_tag = first.rare ? first.rare->source_tag : dst.tag;
    const std::string none;
    const std::string& first_digest = first.rare ? first.rare->source_digest : none;
    const bool same_image = *first.name == src.name() && first_tag == src.tag;
    if (same_image && first_digest == src.digest)
      return Verdict::repeat;
    if (!first.rare)
      first.rare = std::make_unique<Rare>(Rare{dst.tag, "", "", {}});
    Rare& rare = *first.rare;
    const std::string source = src.to_string();
    if (std::find(rare.handled.begin(), rare.handled.end(), source) != rare.handled.end())
      return Verdict::repeat;
    rare.handled.push_back(source);
    // (A source without tag has a digest: two of them are one writer only with the same digest.)
    if (!same_image || !(rare.digest.empty() || src.digest.empty() || rare.digest == src.digest)) {
      std::string first_source = *first.name;
      if (!rare.source_tag.empty())
        first_source += ":" + rare.source_tag;
      if (!rare.source_digest.empty())
        first_source += "@" + rare.source_digest;
      why = "destination " + dst.to_string() + " is already the copy of " + first_source + " (rule \"" +
            (first.rule ? first.rule->name() : t.rule) + "\"); " + source + " is not copied there";
      return Verdict::refuse;
    }
    if (rare.digest.empty())
      rare.digest = src.digest; // a later pinned writer pins what the tag must be
    return Verdict::copy;
  }

private:
  struct Rare {
    std::string source_tag;           ///< the first writer's tag
    std::string source_digest;        ///< its digest as written
    std::string digest;               ///< the digest the tag must be: the first pinned writer's, "" while none
    std::vector<std::string> handled; ///< other sources seen for it, as written, accepted or refused
  };
  struct Writer {
    const std::string* name = nullptr; ///< the first writer's repository (Reference::name)
    const Rule* rule = nullptr;        ///< its rule, for messages
    std::unique_ptr<Rare> rare;        ///< null while its tag is the destination's and nothing is pinned or seen
  };
  const std::string* intern(std::string name) { return &*m_names.insert(std::move(name)).first; }

  std::set<std::string> m_names;                                        ///< every repository named, once
  std::map<std::pair<const std::string*, std::string>, Writer> m_writers; ///< (repository, tag) -> its writer
};

} // namespace

Expansion expand_rules(const std::vector<Rule>& rules, const Defaults& defaults, const TagLister& list_tags,
                       const CreatedLookup& created, const std::function<void(const ImageTask&)>& on_task,
                       Scheduler* scheduler) {
  std::optional<Scheduler> own; // a caller without an engine (verify's expansion, tests)
  if (!scheduler)
    scheduler = &own.emplace(1);
  TagPrefetch listed_tags(rules, defaults, list_tags, *scheduler);
  Expansion out;
  Writers writers;                      // who writes each destination tag
  std::set<std::string> seen_untagged;   // "source -> destination" of the tasks pushed by digest only
  const Rule* current = nullptr;         // the rule being expanded
  auto add = [&](ImageTask t) {
    // Two images for one destination tag: whichever finished last would win. The first rule keeps it.
    // "app:1.25" and "app:1.25@sha256:..." (as `config` writes a pinned workload) are one tag, unless
    // both are pinned, to different digests. The same source for the same destination twice is one task.
    if (t.destination.tag.empty()) {
      if (!seen_untagged.insert(t.source.to_string() + " -> " + t.destination.to_string()).second)
        return;
    } else {
      std::string why;
      switch (writers.check(t, current, why)) {
      case Writers::Verdict::copy:
        break;
      case Writers::Verdict::repeat:
        return;
      case Writers::Verdict::refuse:
        out.errors.push_back({t.rule, std::move(why)});
        return;
      }
    }
    ++out.count;
    if (on_task)
      on_task(t);
    else
      out.tasks.push_back(std::move(t));
  };
  // One rule's tasks; an error (with whether another run may get past it) ends the rule.
  auto expand_one = [&](const Rule& rule) -> std::optional<RuleError> {
    auto fail = [&](const std::string& message, bool again = false) {
      return RuleError{rule.name(), message, again ? rule.spec : std::nullopt};
    };
    const auto r = resolved(rule, defaults);
    if (!r.error.empty())
      return fail(r.error);
    const Reference& src = r.source;
    const Reference& dst = r.destination;
    if (src.tag.empty() && src.digest.empty()) {
      // Rule 6: every tag of the repository; the destination names no tag.
      if (!dst.tag.empty())
        return fail(rule_text(6, "the source has no tag (all tags are copied), so the destination must not have one"));
      const auto listing = listed_tags.get(src.name());
      if (!listing)
        return fail(listing.error().message, transient(listing.error()));
      // A tag is the registry's data, never a path: one that breaks the grammar ("../../x",
      // control bytes) is reported and skipped, and the rest of the rule goes on.
      const std::vector<std::string> listed = valid_tags(*listing, src, rule, out.errors);
      if (listed.empty())
        return fail("repository " + src.name() + " has no tags");
      // Signature and referrers tags ("sha256-<hex>[.sig]") travel with the image they refer to (or
      // not at all with --no-referrers); a repository holding nothing else is copied as it is.
      std::vector<std::string> images;
      for (const auto& tag : listed)
        if (!registry::is_referrers_tag(tag))
          images.push_back(tag);
      CreatedTimes times;
      if (created)
        times = [&](const std::vector<std::string>& candidates) { return created(src, candidates); };
      auto selected = rule.tags.apply(images.empty() ? listed : images, times);
      if (!selected)
        return fail(selected.error().message, transient(selected.error()));
      if (selected->empty())
        return fail("no tag of " + src.name() + " passes the tag filter (" + std::to_string(listed.size()) + " listed)");
      for (const auto& tag : *selected) {
        ImageTask t{src, dst, rule.name()};
        t.source.tag = tag;
        t.destination.tag = tag;
        add(std::move(t));
      }
      return std::nullopt;
    }
    if (!rule.tags.empty())
      return fail("a tag filter needs a source without tag (it selects among all tags)");
    // Rule 7 (and digests): an explicit destination tag wins, else the source's tag, else by digest.
    ImageTask t{src, dst, rule.name()};
    if (t.destination.tag.empty())
      t.destination.tag = src.tag;
    if (t.destination.tag.empty() && !t.destination.layout.empty())
      return fail("an image given by digest needs a tag in an OCI layout (" + t.destination.name() +
                  ":TAG): index.json names its images by tag");
    if (t.destination.tag.empty())
      t.destination.digest = src.digest;
    add(std::move(t));
    return std::nullopt;
  };
  for (const auto& rule : rules) {
    current = &rule;
    if (auto error = expand_one(rule))
      out.errors.push_back(std::move(*error));
  }
  return out;
}

} // namespace migrate
