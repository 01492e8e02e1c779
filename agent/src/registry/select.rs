//! Choosing the tag: the highest semantic version satisfying `semanticVersion` (or the newest
//! by another [`Constraint`] policy, see [`super::policy`]), and why.
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
//! Every tag is parsed once (through the `filterTags` regex when one is set): selection over
//! 10,000 tags takes about a millisecond (see `benches/registry.rs`).

use std::borrow::Cow;
use std::cmp::Ordering;

use alustan_shared::{RejectedTag, RejectionReason};
use semver::Version;

pub use super::policy::Constraint;
use super::policy::Rule;

/// The newest matching tags kept in a [`Selection`].
pub const MAX_NEWEST_MATCHING: usize = 5;
/// The rejected tags kept in a [`Selection`].
pub const MAX_REJECTED: usize = 10;
/// The newest tags listed by a "no tag matches" error.
pub const MAX_NEWEST_SEEN: usize = 5;

/// Counts of rejected tags by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RejectionCounts {
    pub not_semver: usize,
    pub outside_constraint: usize,
    pub prerelease: usize,
    pub not_numerical: usize,
    pub filtered_out: usize,
}

/// The outcome of matching a repository's tags against a constraint, with its explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The constraint as written.
    pub constraint: String,
    /// Tags considered (every tag of the repository).
    pub tag_count: usize,
    /// Tags the policy could order: through the filter, and a semantic version (semver) or a
    /// number (numerical).
    pub parsed_count: usize,
    /// Tags satisfying the constraint.
    pub matching_count: usize,
    /// The chosen tag, exactly as in the registry.
    pub winner: Option<String>,
    /// The newest matching tags, newest (the winner) first; at most [`MAX_NEWEST_MATCHING`].
    pub newest_matching: Vec<String>,
    /// Some rejected tags, at most [`MAX_REJECTED`]: every reason that occurred is
    /// represented (taken in turn, newest first within a reason), then listed ordered values
    /// first, newest first, then unparsed and filtered-out tags in descending byte order.
    pub rejected: Vec<RejectedTag>,
    pub rejected_counts: RejectionCounts,
    /// The newest tags seen whatever the constraint (ordered values first, then others),
    /// at most [`MAX_NEWEST_SEEN`]: what a "no tag matches" message shows.
    pub newest_seen: Vec<String>,
}

/// What a tag is ordered by.
enum Key<'a> {
    Version(Version),
    Number(f64),
    Text(Cow<'a, str>),
}

/// A tag the policy could order.
struct Parsed<'a> {
    tag: &'a str,
    key: Key<'a>,
}

/// How [`Parsed`] tags compare, "newer first".
#[derive(Clone, Copy)]
struct Order {
    /// `order: asc`: the highest value is the newest.
    highest: bool,
    /// Equal values: the tag sorting last wins (with a filter or another policy than semver).
    ties_to_last: bool,
}

impl Order {
    fn of(constraint: &Constraint) -> Self {
        let highest = match constraint.rule {
            Rule::Semver(_) => true,
            Rule::Numerical { highest } | Rule::Alphabetical { highest } => highest,
        };
        let ties_to_last = constraint.filtered() || !matches!(constraint.rule, Rule::Semver(_));
        Self { highest, ties_to_last }
    }

    fn newer_first(self, a: &Parsed<'_>, b: &Parsed<'_>) -> Ordering {
        let by_value = match (&a.key, &b.key) {
            (Key::Version(x), Key::Version(y)) => y.cmp_precedence(x),
            (Key::Number(x), Key::Number(y)) => y.total_cmp(x),
            (Key::Text(x), Key::Text(y)) => y.cmp(x),
            // One policy makes one kind of key.
            _ => Ordering::Equal,
        };
        let by_value = if self.highest { by_value } else { by_value.reverse() };
        by_value.then_with(|| if self.ties_to_last { b.tag.cmp(a.tag) } else { a.tag.cmp(b.tag) })
    }
}

/// The version of a tag, accepting one leading `v`.
pub fn parse_tag(tag: &str) -> Option<Version> {
    Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()
}

/// A decimal number (Go's `ParseFloat` as Flux uses it), finite.
fn parse_number(value: &str) -> Option<f64> {
    value.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Where one tag ends up.
enum Class<'a> {
    Matching(Parsed<'a>),
    /// Ordered, but outside the constraint (semver: outside or a prerelease).
    Rejected(Parsed<'a>, RejectionReason),
    /// Not ordered at all: not a version or number, or filtered out.
    Unordered(&'a str, RejectionReason),
}

fn classify<'a>(tag: &'a str, constraint: &Constraint) -> Class<'a> {
    let Some(value) = constraint.value(tag) else { return Class::Unordered(tag, RejectionReason::FilteredOut) };
    match constraint.rule {
        Rule::Semver(_) => match parse_tag(&value) {
            None => Class::Unordered(tag, RejectionReason::NotSemver),
            Some(version) if constraint.matches(&version) => {
                Class::Matching(Parsed { tag, key: Key::Version(version) })
            }
            Some(version) => {
                let release = Version::new(version.major, version.minor, version.patch);
                let reason = if !version.pre.is_empty() && constraint.matches(&release) {
                    RejectionReason::Prerelease
                } else {
                    RejectionReason::OutsideConstraint
                };
                Class::Rejected(Parsed { tag, key: Key::Version(version) }, reason)
            }
        },
        Rule::Numerical { .. } => match parse_number(&value) {
            Some(number) => Class::Matching(Parsed { tag, key: Key::Number(number) }),
            None => Class::Unordered(tag, RejectionReason::NotNumerical),
        },
        Rule::Alphabetical { .. } => Class::Matching(Parsed { tag, key: Key::Text(value) }),
    }
}

/// Chooses the newest tag satisfying `constraint` and explains the choice.
pub fn select<S: AsRef<str>>(tags: &[S], constraint: &Constraint) -> Selection {
    let order = Order::of(constraint);
    let mut matching = Vec::new();
    let mut outside = Vec::new();
    let mut prerelease = Vec::new();
    let mut unparsed = Vec::new();
    let mut filtered = Vec::new();
    let mut counts = RejectionCounts::default();
    for tag in tags {
        match classify(tag.as_ref(), constraint) {
            Class::Matching(parsed) => matching.push(parsed),
            Class::Rejected(parsed, RejectionReason::Prerelease) => prerelease.push(parsed),
            Class::Rejected(parsed, _) => outside.push(parsed),
            Class::Unordered(tag, RejectionReason::FilteredOut) => filtered.push(tag),
            Class::Unordered(tag, reason) => {
                match reason {
                    RejectionReason::NotNumerical => counts.not_numerical += 1,
                    _ => counts.not_semver += 1,
                }
                unparsed.push((tag, reason));
            }
        }
    }
    counts.outside_constraint = outside.len();
    counts.prerelease = prerelease.len();
    counts.filtered_out = filtered.len();
    let matching_count = matching.len();
    let newest_matching: Vec<String> =
        newest(&mut matching, MAX_NEWEST_MATCHING, order).iter().map(|p| p.tag.to_owned()).collect();
    let newest_outside = newest(&mut outside, MAX_REJECTED, order);
    let newest_pre = newest(&mut prerelease, MAX_REJECTED, order);
    let top_unparsed: Vec<RejectedTag> = top_bytes_desc(&mut unparsed, MAX_REJECTED);
    let mut filtered: Vec<(&str, RejectionReason)> =
        filtered.into_iter().map(|t| (t, RejectionReason::FilteredOut)).collect();
    let top_filtered = top_bytes_desc(&mut filtered, MAX_REJECTED);
    let unordered = [top_unparsed.as_slice(), top_filtered.as_slice()];
    let rejected = bounded_rejections(order, newest_outside, newest_pre, unordered);
    let newest_seen =
        if matching_count == 0 { newest_overall(order, newest_outside, newest_pre, unordered) } else { Vec::new() };
    Selection {
        constraint: constraint.as_str().to_owned(),
        tag_count: tags.len(),
        parsed_count: tags.len() - counts.not_semver - counts.not_numerical - counts.filtered_out,
        matching_count,
        winner: newest_matching.first().cloned(),
        newest_matching,
        rejected,
        rejected_counts: counts,
        newest_seen,
    }
}

/// Sorts the `k` newest to the front (partial selection, then a sort of those `k` only) and
/// returns them.
fn newest<'s, 'a>(items: &'s mut [Parsed<'a>], k: usize, order: Order) -> &'s [Parsed<'a>] {
    if items.len() > k && k > 0 {
        items.select_nth_unstable_by(k - 1, |a, b| order.newer_first(a, b));
    }
    let len = k.min(items.len());
    let top = &mut items[..len];
    top.sort_unstable_by(|a, b| order.newer_first(a, b));
    top
}

/// The `k` tags sorting last byte-wise, last first, as rejections.
fn top_bytes_desc(items: &mut [(&str, RejectionReason)], k: usize) -> Vec<RejectedTag> {
    if items.len() > k && k > 0 {
        items.select_nth_unstable_by(k - 1, |a, b| b.0.cmp(a.0));
    }
    let len = k.min(items.len());
    let top = &mut items[..len];
    top.sort_unstable_by(|a, b| b.0.cmp(a.0));
    top.iter().map(|(tag, reason)| RejectedTag { tag: (*tag).to_owned(), reason: *reason }).collect()
}

/// Takes from each reason in turn so every reason present shows up, then orders the result
/// for reading: ordered values newest first, then the unordered tags.
fn bounded_rejections(
    order: Order,
    outside: &[Parsed<'_>],
    pre: &[Parsed<'_>],
    [unparsed, filtered]: [&[RejectedTag]; 2],
) -> Vec<RejectedTag> {
    let available = [outside.len(), pre.len(), unparsed.len(), filtered.len()];
    let mut taken = [0; 4];
    let mut total = 0;
    while total < MAX_REJECTED && taken != available {
        for (taken, available) in taken.iter_mut().zip(available) {
            if total < MAX_REJECTED && *taken < available {
                *taken += 1;
                total += 1;
            }
        }
    }
    let [o, p, u, f] = taken;
    let mut ordered: Vec<(&Parsed<'_>, RejectionReason)> = outside[..o]
        .iter()
        .map(|v| (v, RejectionReason::OutsideConstraint))
        .chain(pre[..p].iter().map(|v| (v, RejectionReason::Prerelease)))
        .collect();
    ordered.sort_unstable_by(|a, b| order.newer_first(a.0, b.0));
    ordered
        .into_iter()
        .map(|(v, reason)| RejectedTag { tag: v.tag.to_owned(), reason })
        .chain(unparsed[..u].iter().cloned())
        .chain(filtered[..f].iter().cloned())
        .collect()
}

fn newest_overall(
    order: Order,
    outside: &[Parsed<'_>],
    pre: &[Parsed<'_>],
    [unparsed, filtered]: [&[RejectedTag]; 2],
) -> Vec<String> {
    let mut ordered: Vec<&Parsed<'_>> = outside.iter().chain(pre).collect();
    ordered.sort_unstable_by(|a, b| order.newer_first(a, b));
    ordered
        .into_iter()
        .map(|p| p.tag)
        .chain(unparsed.iter().chain(filtered).map(|r| r.tag.as_str()))
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
        assert_eq!((s.tag_count, s.parsed_count, s.matching_count), (5, 4, 3));
        assert_eq!(reasons(&s), [("v1.1.0", OutsideConstraint), ("latest", NotSemver)]);
        // Only a lowercase `v`, and only one.
        assert_eq!(run(&["V1.0.0", "vv1.0.0", "v"], "*").rejected_counts.not_semver, 3);
    }

    #[test]
    fn non_semver_tags_are_rejected() {
        let build_tag = "v1.2.2.2022-01-15t161730814Z.9eabf5b5";
        let s = run(&[build_tag, "latest", "production", "1.2", "01.2.3", "1.2.1"], ">=1");
        assert_eq!(s.winner.as_deref(), Some("1.2.1"));
        assert_eq!(s.rejected_counts, RejectionCounts { not_semver: 5, ..RejectionCounts::default() });
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
        assert_eq!(
            s.rejected_counts,
            RejectionCounts { not_semver: 5, outside_constraint: 30, prerelease: 5, ..RejectionCounts::default() }
        );
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
