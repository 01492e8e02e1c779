//! Choosing the tag: the highest semantic version satisfying `semanticVersion`, and why.
//!
//! # Rules (README-ready)
//!
//! - **Tags.** A tag is a candidate when it is a semantic version (`MAJOR.MINOR.PATCH`, with
//!   optional `-prerelease` and `+build`), optionally prefixed by a lowercase `v`. The tag is
//!   kept exactly as found (`v1.0.3`), so the image reference always names a tag that exists.
//!   Anything else is skipped as *not semver*: `latest`, `production`, `1.2`, and build tags
//!   such as `v1.2.2.2022-01-15t161730814Z.9eabf5b5`.
//! - **Constraints** use Cargo's syntax (the `semver` crate): `~1.0.0` (>=1.0.0, <1.1.0), `^2`
//!   (>=2.0.0, <3.0.0), `>=1.2, <2`, `=1.4.2`, `*`. A bare version `1.2.3` means `^1.2.3`.
//! - **Prereleases** (`1.3.0-rc.1`) match only when a comparator of the constraint names a
//!   prerelease of the same `MAJOR.MINOR.PATCH`: `>=1.3.0-rc.0` admits `1.3.0-rc.1`,
//!   `1.3.0-rc.2` and `1.3.0` (and later releases), but not `1.4.0-beta.1`; `^1.2` and `*`
//!   admit no prerelease at all. A prerelease whose release would satisfy the constraint is
//!   reported as rejected by this *prerelease* rule; otherwise as *outside the constraint*.
//! - **Ordering** is semver precedence. Build metadata is ignored, as the semver spec says:
//!   `1.2.3+b1` and `1.2.3+b2` are the same version. Among tags of equal precedence (they
//!   differ only in build metadata or the `v` prefix) the tag that sorts first byte-wise
//!   wins — `1.2.3` over `1.2.3+b1` over `v1.2.3` — so the choice never depends on the order
//!   the registry lists tags in. (OCI tags cannot contain `+`; build metadata only reaches
//!   alustan from registries that relax the tag grammar.)
//!
//! Every tag is parsed once, without regular expressions: selection over 10,000 tags takes a
//! fraction of a millisecond (see `benches/registry.rs`).

use std::cmp::Ordering;

use alustan_shared::{RejectedTag, RejectionReason};
use semver::{Version, VersionReq};

use super::error::ScanError;

/// The newest matching tags kept in a [`Selection`].
pub const MAX_NEWEST_MATCHING: usize = 5;
/// The rejected tags kept in a [`Selection`].
pub const MAX_REJECTED: usize = 10;
/// The newest tags listed by a "no tag matches" error.
pub const MAX_NEWEST_SEEN: usize = 5;

/// A parsed `semanticVersion`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    raw: String,
    req: VersionReq,
}

impl Constraint {
    /// Parses a constraint; the error carries the parser's own message.
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
        Ok(Self { raw: raw.to_owned(), req })
    }

    /// The constraint as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    fn matches(&self, version: &Version) -> bool {
        self.req.matches(version)
    }

    /// Why a version that does not match was rejected (see the module docs).
    fn reason(&self, version: &Version) -> RejectionReason {
        if !version.pre.is_empty() && self.matches(&Version::new(version.major, version.minor, version.patch)) {
            RejectionReason::Prerelease
        } else {
            RejectionReason::OutsideConstraint
        }
    }
}

/// Counts of rejected tags by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RejectionCounts {
    pub not_semver: usize,
    pub outside_constraint: usize,
    pub prerelease: usize,
}

/// The outcome of matching a repository's tags against a constraint, with its explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The constraint as written.
    pub constraint: String,
    /// Tags considered (every tag of the repository).
    pub tag_count: usize,
    /// Tags that are semantic versions.
    pub semver_count: usize,
    /// Tags satisfying the constraint.
    pub matching_count: usize,
    /// The chosen tag, exactly as in the registry.
    pub winner: Option<String>,
    /// The newest matching tags, newest (the winner) first; at most [`MAX_NEWEST_MATCHING`].
    pub newest_matching: Vec<String>,
    /// Some rejected tags, at most [`MAX_REJECTED`]: every reason that occurred is
    /// represented (taken in turn, newest first within a reason), then listed semantic
    /// versions first, newest first, then non-semver tags in descending byte order.
    pub rejected: Vec<RejectedTag>,
    pub rejected_counts: RejectionCounts,
    /// The newest tags seen whatever the constraint (semantic versions first, then others),
    /// at most [`MAX_NEWEST_SEEN`]: what a "no tag matches" message shows.
    pub newest_seen: Vec<String>,
}

/// A tag that parsed as a semantic version.
struct Parsed<'a> {
    tag: &'a str,
    version: Version,
}

/// "Newer first": higher precedence first; equal precedence → smaller tag string first.
fn newer_first(a: &Parsed<'_>, b: &Parsed<'_>) -> Ordering {
    b.version.cmp_precedence(&a.version).then_with(|| a.tag.cmp(b.tag))
}

/// The version of a tag, accepting one leading `v`.
pub fn parse_tag(tag: &str) -> Option<Version> {
    Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()
}

/// Chooses the newest tag satisfying `constraint` and explains the choice.
pub fn select<S: AsRef<str>>(tags: &[S], constraint: &Constraint) -> Selection {
    let mut matching = Vec::new();
    let mut outside = Vec::new();
    let mut prerelease = Vec::new();
    let mut not_semver = Vec::new();
    for tag in tags {
        let tag = tag.as_ref();
        match parse_tag(tag) {
            None => not_semver.push(tag),
            Some(version) if constraint.matches(&version) => matching.push(Parsed { tag, version }),
            Some(version) => match constraint.reason(&version) {
                RejectionReason::Prerelease => prerelease.push(Parsed { tag, version }),
                _ => outside.push(Parsed { tag, version }),
            },
        }
    }
    let rejected_counts = RejectionCounts {
        not_semver: not_semver.len(),
        outside_constraint: outside.len(),
        prerelease: prerelease.len(),
    };
    let matching_count = matching.len();
    let newest_matching: Vec<String> =
        newest(&mut matching, MAX_NEWEST_MATCHING).iter().map(|p| p.tag.to_owned()).collect();
    let newest_outside = newest(&mut outside, MAX_REJECTED);
    let newest_pre = newest(&mut prerelease, MAX_REJECTED);
    let newest_not_semver = top_bytes_desc(&mut not_semver, MAX_REJECTED);
    let rejected = bounded_rejections(newest_outside, newest_pre, newest_not_semver);
    let newest_seen =
        if matching_count == 0 { newest_overall(newest_outside, newest_pre, newest_not_semver) } else { Vec::new() };
    Selection {
        constraint: constraint.as_str().to_owned(),
        tag_count: tags.len(),
        semver_count: tags.len() - not_semver.len(),
        matching_count,
        winner: newest_matching.first().cloned(),
        newest_matching,
        rejected,
        rejected_counts,
        newest_seen,
    }
}

/// Sorts the `k` newest to the front (partial selection, then a sort of those `k` only) and
/// returns them.
fn newest<'s, 'a>(items: &'s mut [Parsed<'a>], k: usize) -> &'s [Parsed<'a>] {
    if items.len() > k && k > 0 {
        items.select_nth_unstable_by(k - 1, newer_first);
    }
    let len = k.min(items.len());
    let top = &mut items[..len];
    top.sort_unstable_by(newer_first);
    top
}

fn top_bytes_desc<'s, 'a>(items: &'s mut [&'a str], k: usize) -> &'s [&'a str] {
    if items.len() > k && k > 0 {
        items.select_nth_unstable_by(k - 1, |a, b| b.cmp(a));
    }
    let len = k.min(items.len());
    let top = &mut items[..len];
    top.sort_unstable_by(|a, b| b.cmp(a));
    top
}

/// Takes from each reason in turn so every reason present shows up, then orders the result
/// for reading: versions newest first, then the non-semver tags.
fn bounded_rejections(outside: &[Parsed<'_>], pre: &[Parsed<'_>], not_semver: &[&str]) -> Vec<RejectedTag> {
    let available = [outside.len(), pre.len(), not_semver.len()];
    let mut taken = [0; 3];
    let mut total = 0;
    while total < MAX_REJECTED && taken != available {
        for (taken, available) in taken.iter_mut().zip(available) {
            if total < MAX_REJECTED && *taken < available {
                *taken += 1;
                total += 1;
            }
        }
    }
    let [o, p, n] = taken;
    let mut versions: Vec<(&Parsed<'_>, RejectionReason)> = outside[..o]
        .iter()
        .map(|v| (v, RejectionReason::OutsideConstraint))
        .chain(pre[..p].iter().map(|v| (v, RejectionReason::Prerelease)))
        .collect();
    versions.sort_unstable_by(|a, b| newer_first(a.0, b.0));
    versions
        .into_iter()
        .map(|(v, reason)| RejectedTag { tag: v.tag.to_owned(), reason })
        .chain(not_semver[..n].iter().map(|t| RejectedTag { tag: (*t).to_owned(), reason: RejectionReason::NotSemver }))
        .collect()
}

fn newest_overall(outside: &[Parsed<'_>], pre: &[Parsed<'_>], not_semver: &[&str]) -> Vec<String> {
    let mut versions: Vec<&Parsed<'_>> = outside.iter().chain(pre).collect();
    versions.sort_unstable_by(|a, b| newer_first(a, b));
    versions
        .into_iter()
        .map(|p| p.tag)
        .chain(not_semver.iter().copied())
        .take(MAX_NEWEST_SEEN)
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use RejectionReason::{NotSemver, OutsideConstraint, Prerelease};

    fn run(tags: &[&str], constraint: &str) -> Selection {
        select(tags, &Constraint::parse(constraint).unwrap())
    }

    fn reasons(selection: &Selection) -> Vec<(&str, RejectionReason)> {
        selection.rejected.iter().map(|r| (r.tag.as_str(), r.reason)).collect()
    }

    #[test]
    fn v_prefix_is_accepted_and_kept() {
        let s = run(&["v1.0.0", "v1.0.3", "1.0.2", "v1.1.0", "latest"], "~1.0.0");
        assert_eq!(s.winner.as_deref(), Some("v1.0.3"));
        assert_eq!(s.newest_matching, ["v1.0.3", "1.0.2", "v1.0.0"]);
        assert_eq!((s.tag_count, s.semver_count, s.matching_count), (5, 4, 3));
        assert_eq!(reasons(&s), [("v1.1.0", OutsideConstraint), ("latest", NotSemver)]);
        // Only a lowercase `v`, and only one.
        assert_eq!(run(&["V1.0.0", "vv1.0.0", "v"], "*").rejected_counts.not_semver, 3);
    }

    #[test]
    fn non_semver_tags_are_rejected() {
        let build_tag = "v1.2.2.2022-01-15t161730814Z.9eabf5b5";
        let s = run(&[build_tag, "latest", "production", "1.2", "01.2.3", "1.2.1"], ">=1");
        assert_eq!(s.winner.as_deref(), Some("1.2.1"));
        assert_eq!(s.rejected_counts, RejectionCounts { not_semver: 5, outside_constraint: 0, prerelease: 0 });
        assert_eq!(
            reasons(&s),
            [
                (build_tag, NotSemver),
                ("production", NotSemver),
                ("latest", NotSemver),
                ("1.2", NotSemver),
                ("01.2.3", NotSemver)
            ]
        );
    }

    #[test]
    fn prereleases_need_a_comparator_naming_one() {
        let tags = ["1.2.0", "1.2.1", "1.3.0-rc.1", "1.3.0-rc.2", "1.4.0-beta.1", "2.0.0-rc.1"];
        let s = run(&tags, "^1.2");
        assert_eq!(s.winner.as_deref(), Some("1.2.1"));
        assert_eq!(
            reasons(&s),
            [
                ("2.0.0-rc.1", OutsideConstraint), // its release 2.0.0 is outside ^1.2
                ("1.4.0-beta.1", Prerelease),
                ("1.3.0-rc.2", Prerelease),
                ("1.3.0-rc.1", Prerelease),
            ]
        );
        let s = run(&tags, ">=1.3.0-rc.1, <2");
        assert_eq!(s.winner.as_deref(), Some("1.3.0-rc.2"), "same major.minor.patch as the comparator");
        assert!(reasons(&s).contains(&("1.4.0-beta.1", Prerelease)), "another patch: not admitted");
        assert_eq!(run(&["1.3.0-rc.1", "1.3.0"], ">=1.3.0-rc.0").winner.as_deref(), Some("1.3.0"));
        assert_eq!(run(&["1.3.0-rc.1"], "*").rejected_counts.prerelease, 1);
        assert_eq!(run(&["v1.3.0-rc.2", "v1.3.0-rc.10"], "=1.3.0-rc.10").winner.as_deref(), Some("v1.3.0-rc.10"));
        assert_eq!(
            run(&["1.3.0-rc.2", "1.3.0-rc.10"], ">=1.3.0-rc.1").winner.as_deref(),
            Some("1.3.0-rc.10"),
            "numeric identifiers compare as numbers"
        );
    }

    #[test]
    fn build_metadata_is_ignored_and_ties_are_deterministic() {
        let tags = ["v1.2.3", "1.2.3+b2", "1.2.3+b1", "1.2.3", "1.2.2+b9"];
        let mut reversed = tags;
        reversed.reverse();
        for input in [tags, reversed] {
            let s = run(&input, "^1");
            assert_eq!(s.winner.as_deref(), Some("1.2.3"));
            assert_eq!(s.newest_matching, ["1.2.3", "1.2.3+b1", "1.2.3+b2", "v1.2.3", "1.2.2+b9"]);
        }
        assert_eq!(run(&["v1.2.3", "1.2.3+b1"], "^1").winner.as_deref(), Some("1.2.3+b1"));
        assert_eq!(run(&["1.2.3+b1"], "=1.2.3").winner.as_deref(), Some("1.2.3+b1"), "matching ignores build");
    }

    #[test]
    fn invalid_constraints_carry_the_parser_message() {
        for (input, message) in [
            (
                "~>1.0",
                "unexpected character '>' while parsing major version number; `~>` is Terraform's syntax: write `~1.2.0` (Terraform `~> 1.2.0`) or `^1.2` (Terraform `~> 1.2`)",
            ),
            ("latest", "unexpected character 'l' while parsing major version number"),
            (">=1.2 <2", "expected comma after minor version number, found '<'"),
            ("", "unexpected end of input while parsing major version number"),
        ] {
            let err = Constraint::parse(input).unwrap_err();
            assert_eq!(err.to_string(), format!("invalid semanticVersion {input:?}: {message}"));
            assert_eq!(err.metric_label(), "invalid_constraint");
        }
        assert_eq!(Constraint::parse(" ^1.2 ").unwrap().as_str(), " ^1.2 ");
    }

    #[test]
    fn no_match_shows_the_newest_tags_seen() {
        let s = run(&["1.0.0", "2.1.0-rc.1", "latest", "1.9.0", "v2.0.0"], "^3");
        assert_eq!(s.winner, None);
        assert_eq!(s.matching_count, 0);
        assert_eq!(s.newest_seen, ["2.1.0-rc.1", "v2.0.0", "1.9.0", "1.0.0", "latest"]);
        assert_eq!(run(&[], "^1").newest_seen, Vec::<String>::new());
        assert!(run(&["1.0.0"], "^1").newest_seen.is_empty(), "only kept when nothing matched");
    }

    #[test]
    fn rejections_are_bounded_and_represent_every_reason() {
        let mut tags: Vec<String> = (0..30).map(|i| format!("2.{i}.0")).collect();
        tags.extend((0..5).map(|i| format!("1.{i}.0-rc.1")));
        tags.extend((0..5).map(|i| format!("build-{i}")));
        tags.push("1.0.0".into());
        let s = select(&tags, &Constraint::parse("^1").unwrap());
        assert_eq!(s.rejected_counts, RejectionCounts { not_semver: 5, outside_constraint: 30, prerelease: 5 });
        assert_eq!(s.rejected.len(), MAX_REJECTED);
        let got = reasons(&s);
        assert_eq!(
            &got[..4],
            [
                ("2.29.0", OutsideConstraint),
                ("2.28.0", OutsideConstraint),
                ("2.27.0", OutsideConstraint),
                ("2.26.0", OutsideConstraint)
            ]
        );
        assert_eq!(&got[4..7], [("1.4.0-rc.1", Prerelease), ("1.3.0-rc.1", Prerelease), ("1.2.0-rc.1", Prerelease)]);
        assert_eq!(&got[7..], [("build-4", NotSemver), ("build-3", NotSemver), ("build-2", NotSemver)]);
    }

    #[test]
    fn many_tags_matching() {
        let tags: Vec<String> = (0..10_000).map(|i| format!("v{}.{}.{}", i / 1000, (i / 10) % 100, i % 10)).collect();
        let s = select(&tags, &Constraint::parse(">=3.5, <7").unwrap());
        assert_eq!(s.winner.as_deref(), Some("v6.99.9"));
        assert_eq!(s.newest_matching, ["v6.99.9", "v6.99.8", "v6.99.7", "v6.99.6", "v6.99.5"]);
        assert_eq!(s.matching_count, 3950, "3.5.0..=3.99.9 and 4.x..6.x");
    }
}
