#pragma once
// images.json rules -> concrete image tasks, following the eight rules of the image-migrator
// documentation. Rules that break a rule become RuleErrors ("tasks generate failed"); the others
// still run.

#include "migrate/tags.hpp"
#include "registry/reference.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace migrate {

class Scheduler;

/// One source -> destination pair as written by the user ("" destination = defaults).
struct Rule {
  std::string source;
  std::string destination;
  // Defaulted, so that {source, destination} is a whole rule (and -Wmissing-field-initializers agrees).
  TagFilter tags{};  ///< for sources without tag: which tags to copy
  std::string key{}; ///< the rule's key in the file, for messages ("" = source)
  std::optional<nlohmann::json> spec{}; ///< the rule's value as written (to write the rule out again)
  /// The rule parsed against the defaults (resolve_rules): both references, or why it cannot run.
  /// Sharding, endpoint set-up, tag prefetch and expansion all read this; nothing parses the text again.
  struct Resolved {
    registry::Reference source;
    registry::Reference destination;
    std::string error; ///< "" when the references are good
  };
  std::optional<Resolved> resolved{};
  const std::string& name() const { return key.empty() ? source : key; }
};

/// Target defaults for empty destinations, and source defaults for incomplete sources.
struct Defaults {
  std::string registry;         ///< --registry / DEFAULT_REGISTRY
  std::string ns;               ///< --namespace / DEFAULT_NAMESPACE
  std::string source_registry;  ///< --default-source-registry
  std::string source_namespace; ///< --default-source-namespace
};

/// One image to copy: a tag or digest of one repository to one destination reference.
struct ImageTask {
  registry::Reference source;      ///< has a tag or a digest
  registry::Reference destination; ///< has a tag, or only a digest when pushed by digest
  std::string rule;                ///< the rule key it came from, for messages
};

struct RuleError {
  std::string rule;
  std::string message;
  /// The rule's value as written, when running the rule again may get past the error (its listing
  /// failed for a transient reason or was interrupted): --write-failed writes it out.
  std::optional<nlohmann::json> rerun = std::nullopt;
};

struct Expansion {
  std::vector<ImageTask> tasks; ///< empty when expand_rules handed them to an `on_task` instead
  std::size_t count = 0;        ///< tasks made
  std::vector<RuleError> errors;
};

/// Reads the rules of an images document: an object whose values are a destination string, an
/// empty string/null, an array of destinations (rule 4), or an object
/// {"destination": string or array, "tags": {"regex", "exclude", "semver", "latest"}}. A key of
/// image-syncer's form "repo:/regex/" selects tags by regex. Values of other types are RuleErrors.
/// A document that is not an object throws ConfigError.
std::vector<Rule> read_rules(const nlohmann::json& images, const std::string& file, std::vector<RuleError>& errors);

/// Parses every rule's source and destination once, with the defaults (Rule::resolved). The
/// functions below take rules resolved or not (they resolve a copy of those that are not).
void resolve_rules(std::vector<Rule>& rules, const Defaults& defaults);

/// Lists the tags of a repository (rule 6). Injected so unit tests need no registry.
using TagLister = std::function<http::Result<std::vector<std::string>>(const registry::Reference& repository)>;

/// The rules shard `index` of `count` takes: keyed by destination repository (FNV-1a), so the tags of a
/// repository, which share layers, stay in one shard, and so do all the rules that write one tag
/// (their collision is found there). Rules that do not parse go to shard 0, which reports them.
std::vector<Rule> rules_for_shard(const std::vector<Rule>& rules, const Defaults& defaults, int index, int count);

/// Lists the repositories of a registry below a namespace (whole-namespace rules): the catalog, or
/// what else the registry offers (Harbor's project API). Injected like TagLister. May return
/// repositories outside the namespace; the caller keeps those below it.
using CatalogLister =
    std::function<http::Result<std::vector<std::string>>(const std::string& registry, const std::string& ns)>;

/// Replaces whole-namespace rules "registry/namespace/*" -> "registry/namespace/*" (or "") by one
/// rule per repository below that namespace, found in the registry's catalog. Without a lister, or
/// when the catalog is refused, such a rule is a RuleError.
std::vector<Rule> expand_namespaces(const std::vector<Rule>& rules, const Defaults& defaults,
                                    const CatalogLister& list_catalog, std::vector<RuleError>& errors);

/// Creation times of some tags of a repository (for "latest N" among tags that are not versions).
using CreatedLookup = std::function<http::Result<std::map<std::string, double>>(const registry::Reference& repository,
                                                                                const std::vector<std::string>& tags)>;

/// Applies the rules. Tags are listed only for sources without tag or digest, in the background,
/// and a rule waits only for its own repository's list. `on_task`, when given, takes every task as
/// soon as its rule is done (before expand_rules returns): a run can start with the first rules;
/// the tasks are then not kept in the Expansion (a catalogue's worth of them), only counted.
Expansion expand_rules(const std::vector<Rule>& rules, const Defaults& defaults, const TagLister& list_tags,
                       const CreatedLookup& created = {},
                       const std::function<void(const ImageTask&)>& on_task = {}, Scheduler* scheduler = nullptr);

/// The source and destination of every rule that parses (rule errors are expand_rules' to report):
/// the registries a run will talk to, to be set up before anything is copied.
std::vector<registry::Reference> rule_endpoints(const std::vector<Rule>& rules, const Defaults& defaults);

} // namespace migrate
