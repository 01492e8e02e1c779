//! What a tag must be to be chosen, and how candidates are ordered: `semanticVersion`,
//! `policy`, `order` and `filterTags` of `spec.containerRegistry`, parsed once per scan.
//!
//! # Rules (README-ready)
//!
//! - **`filterTags.pattern`** is a regular expression in RE2 syntax, the syntax of Go's
//!   `regexp` that Flux uses (named groups `(?P<name>…)` or `(?<name>…)`). It may match
//!   anywhere in the tag, as in Flux: anchor it (`^…$`) to match the whole tag. Tags that do
//!   not match are rejected as *filtered out*.
//! - **`filterTags.extract`** is expanded with the first match's groups (`$name`, `${name}`,
//!   `$1`, `$$` for a dollar sign: Go's `Regexp.Expand`), and the result is what the policy
//!   orders. Empty: the whole tag. The tag applied is always the full original tag.
//! - **`policy: semver`** (the default) orders by semantic version within `semanticVersion`
//!   (see [`super::select`]). **`numerical`** parses the value as a decimal number (rejecting
//!   others as *not numerical*); **`alphabetical`** compares the value byte-wise. `order: asc`
//!   (the default) picks the highest value, `desc` the lowest, as in Flux.
//! - **Ties** (equal values: many builds of one version, `1` and `01`) go to the tag that sorts
//!   last byte-wise, so for build tags `v1.2.2.2022-01-15t161730814Z.9eabf5b5` extracted as
//!   `$version` the newest build of the newest version wins. Without `filterTags`, semver ties
//!   keep their historic rule (the tag sorting *first*, see [`super::select`]).

use std::borrow::Cow;
use std::fmt::Write as _;

use alustan_shared::{ContainerRegistry, TagOrder, TagPolicy};
use regex::Regex;
use semver::{Version, VersionReq};

use super::error::ScanError;

/// How candidate values are ordered.
#[derive(Debug, Clone)]
pub(super) enum Rule {
    /// Semantic versions satisfying the requirement.
    Semver(VersionReq),
    /// Decimal numbers; `highest`: `order: asc`.
    Numerical { highest: bool },
    /// Byte-wise strings; `highest`: `order: asc`.
    Alphabetical { highest: bool },
}

/// How the value of a tag is made from the pattern's first match.
#[derive(Debug, Clone)]
enum Extract {
    /// The whole tag (empty `extract`).
    Tag,
    /// Exactly one group (`$version`, `${version}`, `$2`): the tag's own bytes, no copy.
    Group(usize),
    /// Any other template, expanded as Go's `Regexp.Expand` does.
    Template(String),
}

#[derive(Debug, Clone)]
struct Filter {
    regex: Regex,
    extract: Extract,
}

/// A parsed tag policy: what `status.lastScan.constraint` shows and how tags are chosen.
#[derive(Debug, Clone)]
pub struct Constraint {
    /// As status and messages show it.
    description: String,
    /// Everything that changes the choice (two equal identities choose alike).
    identity: String,
    pub(super) rule: Rule,
    filter: Option<Filter>,
}

impl PartialEq for Constraint {
    fn eq(&self, other: &Self) -> bool {
        self.identity == other.identity
    }
}

impl Eq for Constraint {}

impl Constraint {
    /// A semver constraint without a filter; the error carries the parser's own message.
    pub fn parse(raw: &str) -> Result<Self, ScanError> {
        let req = VersionReq::parse(raw.trim()).map_err(|err| {
            // Terraform users write `~> 1.2`: say what it is here (the CRD's rule says it too).
            let hint = if raw.contains("~>") {
                "; `~>` is Terraform's syntax: write `~1.2.0` (Terraform `~> 1.2.0`) or `^1.2` (Terraform `~> 1.2`)"
            } else {
                ""
            };
            ScanError::InvalidConstraint { constraint: raw.to_owned(), message: format!("{err}{hint}") }
        })?;
        Ok(Self {
            description: raw.to_owned(),
            identity: format!("semver\0{raw}"),
            rule: Rule::Semver(req),
            filter: None,
        })
    }

    /// The policy of `spec.containerRegistry`.
    pub fn from_registry(registry: &ContainerRegistry) -> Result<Self, ScanError> {
        let policy = registry.policy.unwrap_or_default();
        let order = registry.order.unwrap_or_default();
        let mut constraint = match policy {
            TagPolicy::Semver => {
                if registry.order.is_some() {
                    return Err(invalid(
                        "order",
                        order_name(order),
                        "order applies to numerical and alphabetical policies; semver always picks the highest version",
                    ));
                }
                if registry.semantic_version.trim().is_empty() {
                    return Err(ScanError::InvalidConstraint {
                        constraint: registry.semantic_version.clone(),
                        message: "policy semver (the default) needs a semanticVersion, e.g. \">=1.0.0\"".to_owned(),
                    });
                }
                Self::parse(&registry.semantic_version)?
            }
            TagPolicy::Numerical | TagPolicy::Alphabetical => {
                let highest = order == TagOrder::Asc;
                let (rule, name) = if policy == TagPolicy::Numerical {
                    (Rule::Numerical { highest }, "numerical")
                } else {
                    (Rule::Alphabetical { highest }, "alphabetical")
                };
                if !registry.semantic_version.is_empty() {
                    let message = format!(
                        "semanticVersion applies to policy semver only; remove it or use policy semver (policy is {name})"
                    );
                    return Err(invalid("semanticVersion", &registry.semantic_version, &message));
                }
                Self { identity: format!("{name}\0{highest}"), description: String::new(), rule, filter: None }
            }
        };
        if let Some(filter) = &registry.filter_tags {
            let regex = Regex::new(&filter.pattern)
                .map_err(|err| invalid("filterTags.pattern", &filter.pattern, &one_line(&err.to_string())))?;
            let extract = parse_extract(&regex, &filter.extract)?;
            let _ = write!(constraint.identity, "\0{}\0{}", filter.pattern, filter.extract);
            constraint.filter = Some(Filter { regex, extract });
        }
        constraint.description = registry.policy_description();
        Ok(constraint)
    }

    /// The constraint as status shows it: `semanticVersion` as written, or the policy, with
    /// the filter if any.
    pub fn as_str(&self) -> &str {
        &self.description
    }

    /// Everything that changes the choice: requests with equal identities choose alike.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Whether a filter decides which tags are candidates (and ties go to the last tag).
    pub(super) fn filtered(&self) -> bool {
        self.filter.is_some()
    }

    /// The value the policy orders `tag` by; `None`: the filter rejects it.
    pub(super) fn value<'t>(&self, tag: &'t str) -> Option<Cow<'t, str>> {
        let Some(filter) = &self.filter else { return Some(Cow::Borrowed(tag)) };
        match &filter.extract {
            Extract::Tag => filter.regex.is_match(tag).then_some(Cow::Borrowed(tag)),
            Extract::Group(index) => {
                let captures = filter.regex.captures(tag)?;
                Some(Cow::Borrowed(captures.get(*index).map_or("", |m| m.as_str())))
            }
            Extract::Template(template) => {
                let captures = filter.regex.captures(tag)?;
                let mut value = String::new();
                captures.expand(template, &mut value);
                Some(Cow::Owned(value))
            }
        }
    }

    /// Whether `version` satisfies a semver rule (any version for other rules).
    pub(super) fn matches(&self, version: &Version) -> bool {
        match &self.rule {
            Rule::Semver(req) => req.matches(version),
            _ => true,
        }
    }
}

fn order_name(order: TagOrder) -> &'static str {
    match order {
        TagOrder::Asc => "asc",
        TagOrder::Desc => "desc",
    }
}

fn invalid(field: &'static str, value: &str, message: &str) -> ScanError {
    ScanError::InvalidTagPolicy { field, value: value.to_owned(), message: message.to_owned() }
}

/// The regex crate's errors draw the pattern over several lines; status wants one.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Understands `extract`, refusing groups the pattern does not have (Go would expand them to
/// nothing, silently making every value empty).
fn parse_extract(regex: &Regex, extract: &str) -> Result<Extract, ScanError> {
    if extract.is_empty() {
        return Ok(Extract::Tag);
    }
    let names: Vec<&str> = regex.capture_names().flatten().collect();
    let group = |name: &str| -> Option<usize> {
        match name.parse::<usize>() {
            Ok(index) => (index < regex.captures_len()).then_some(index),
            Err(_) => regex.capture_names().position(|n| n == Some(name)),
        }
    };
    for name in referenced_groups(extract) {
        if group(name).is_none() {
            let known = if names.is_empty() {
                "it has no named groups".to_owned()
            } else {
                format!("its groups: {}", names.join(", "))
            };
            let message = format!("names group {name:?}, which filterTags.pattern does not define ({known})");
            return Err(invalid("filterTags.extract", extract, &message));
        }
    }
    let single = extract
        .strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
        .or_else(|| extract.strip_prefix('$').filter(|name| name.chars().all(is_name_char)));
    Ok(match single.and_then(group) {
        Some(index) => Extract::Group(index),
        None => Extract::Template(extract.to_owned()),
    })
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The group names a template refers to (`$name`, `${name}`; `$$` is a literal dollar).
fn referenced_groups(template: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            rest = after;
        } else if let Some(braced) = rest.strip_prefix('{') {
            let Some(end) = braced.find('}') else { break };
            names.push(&braced[..end]);
            rest = &braced[end + 1..];
        } else {
            let end = rest.find(|c: char| !is_name_char(c)).unwrap_or(rest.len());
            if end > 0 {
                names.push(&rest[..end]);
            }
            rest = &rest[end..];
        }
    }
    names
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
