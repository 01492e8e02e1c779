//! The policies against Flux's documented `ImagePolicy` examples, and the build-tag standard.

use alustan_shared::{ContainerRegistry, RejectionReason};
use serde_json::json;

use super::super::select::{RejectionCounts, Selection, select};
use super::*;
use RejectionReason::{FilteredOut, NotNumerical, NotSemver, OutsideConstraint};

fn policy(registry: serde_json::Value) -> Result<Constraint, ScanError> {
    let mut registry = registry;
    registry["imageName"] = json!("x/y");
    let registry: ContainerRegistry = serde_json::from_value(registry).unwrap();
    Constraint::from_registry(&registry)
}

fn run(tags: &[&str], registry: serde_json::Value) -> Selection {
    select(tags, &policy(registry).unwrap())
}

fn reasons(selection: &Selection) -> Vec<(&str, RejectionReason)> {
    selection.rejected.iter().map(|r| (r.tag.as_str(), r.reason)).collect()
}

#[test]
fn flux_numerical_example_picks_the_newest_main_build_timestamp() {
    // Flux docs: `--filter-regex='^main-[a-f0-9]+-(?P<ts>[0-9]+)' --filter-extract='$ts' --select-numeric=asc`.
    let tags = [
        "main-abc1234-1611920000",
        "main-def5678-1611930000",
        "main-0a1b2c3-1611925000",
        "feature-1a2b3c4-1700000000",
        "latest",
    ];
    let filter = json!({"pattern": "^main-[a-fA-F0-9]+-(?P<ts>.*)", "extract": "$ts"});
    let s = run(&tags, json!({"policy": "numerical", "filterTags": filter}));
    assert_eq!(s.winner.as_deref(), Some("main-def5678-1611930000"), "the full original tag is applied");
    assert_eq!(s.newest_matching, ["main-def5678-1611930000", "main-0a1b2c3-1611925000", "main-abc1234-1611920000"]);
    assert_eq!(reasons(&s), [("latest", FilteredOut), ("feature-1a2b3c4-1700000000", FilteredOut)]);
    assert_eq!(s.rejected_counts, RejectionCounts { filtered_out: 2, ..RejectionCounts::default() });
    assert_eq!(
        s.constraint,
        r#"numerical, highest first of tags matching "^main-[a-fA-F0-9]+-(?P<ts>.*)" (extract "$ts")"#
    );
    let lowest = run(&tags, json!({"policy": "numerical", "order": "desc", "filterTags": filter}));
    assert_eq!(lowest.winner.as_deref(), Some("main-abc1234-1611920000"), "order desc picks the lowest");
}

#[test]
fn flux_alphabetical_example_picks_the_latest_release_timestamp() {
    // Flux docs: minio's `RELEASE.<timestamp>Z` tags, `^RELEASE\.(?P<timestamp>.*)Z$`, `$timestamp`.
    let tags = ["RELEASE.2020-11-19T23-48-16Z", "RELEASE.2021-01-05T05-22-38Z", "RELEASE.2020-12-03T00-03-10Z", "edge"];
    let filter = json!({"pattern": r"^RELEASE\.(?P<timestamp>.*)Z$", "extract": "$timestamp"});
    let s = run(&tags, json!({"policy": "alphabetical", "filterTags": filter}));
    assert_eq!(s.winner.as_deref(), Some("RELEASE.2021-01-05T05-22-38Z"));
    assert_eq!(reasons(&s), [("edge", FilteredOut)]);
    let first = run(&tags, json!({"policy": "alphabetical", "order": "desc", "filterTags": filter}));
    assert_eq!(first.winner.as_deref(), Some("RELEASE.2020-11-19T23-48-16Z"));
    // Without a filter, alphabetical orders whole tags.
    assert_eq!(run(&["a", "c", "b"], json!({"policy": "alphabetical"})).winner.as_deref(), Some("c"));
}

#[test]
fn flux_semver_example_extracts_the_version_from_build_tags() {
    // `build-42-v1.3.7`: `^build-\d+-v(?P<version>\d+\.\d+\.\d+)$`, `$version`, range `>=1.0.0`.
    let tags = ["build-42-v1.3.7", "build-43-v1.4.0", "build-44-v0.9.0", "v1.9.9"];
    let filter = json!({"pattern": r"^build-\d+-v(?P<version>\d+\.\d+\.\d+)$", "extract": "$version"});
    let s = run(&tags, json!({"semanticVersion": ">=1.0.0", "filterTags": filter}));
    assert_eq!(s.winner.as_deref(), Some("build-43-v1.4.0"));
    assert_eq!(reasons(&s), [("build-44-v0.9.0", OutsideConstraint), ("v1.9.9", FilteredOut)]);
}

#[test]
fn build_tags_select_the_newest_build_of_the_newest_matching_version() {
    let tags = [
        "v1.2.2.2022-01-15t161730814Z.9eabf5b5",
        "v1.2.2.2022-01-16t090000000Z.1c2d3e4f",
        "v1.2.1.2022-01-20t120000000Z.aaaaaaaa",
        "v1.3.0.2022-01-21t120000000Z.bbbbbbbb",
        "v1.2.2",
        "latest",
    ];
    let filter = json!({
        "pattern": r"^v(?P<version>\d+\.\d+\.\d+)\.(?P<build>\d{4}-\d{2}-\d{2}t\d{9}Z)\.(?P<sha>[0-9a-f]{8})$",
        "extract": "$version"
    });
    let mut reversed = tags;
    reversed.reverse();
    for input in [tags, reversed] {
        let s = run(&input, json!({"semanticVersion": "~1.2", "filterTags": filter}));
        assert_eq!(s.winner.as_deref(), Some("v1.2.2.2022-01-16t090000000Z.1c2d3e4f"), "newest build of 1.2.2");
        assert_eq!(s.matching_count, 3);
        assert_eq!(
            reasons(&s),
            [
                ("v1.3.0.2022-01-21t120000000Z.bbbbbbbb", OutsideConstraint),
                ("v1.2.2", FilteredOut),
                ("latest", FilteredOut)
            ]
        );
    }
    // Without a filter the same tags are not semantic versions, as before.
    let plain = run(&tags, json!({"semanticVersion": "~1.2"}));
    assert_eq!(plain.winner.as_deref(), Some("v1.2.2"));
    assert_eq!(plain.rejected_counts.not_semver, 5);
}

#[test]
fn extract_templates_expand_like_go() {
    let filter = json!({"pattern": r"^(?P<major>\d+)-(?P<minor>\d+)-(\w+)$", "extract": "${major}.${minor}.0"});
    let s = run(&["1-2-x", "1-10-y", "2-0-z"], json!({"semanticVersion": "^1", "filterTags": filter}));
    assert_eq!(s.winner.as_deref(), Some("1-10-y"));
    let numbered = json!({"pattern": r"^b(\d+)$", "extract": "$1"});
    assert_eq!(
        run(&["b9", "b10", "b2"], json!({"policy": "numerical", "filterTags": numbered})).winner.as_deref(),
        Some("b10")
    );
    let constraint =
        policy(json!({"policy": "alphabetical", "filterTags": {"pattern": "(?P<a>x)", "extract": "$$$a"}})).unwrap();
    assert_eq!(constraint.value("axb").as_deref(), Some("$x"), "$$ is a literal dollar; unanchored match");
    let whole = policy(json!({"policy": "alphabetical", "filterTags": {"pattern": "^rc-"}})).unwrap();
    assert_eq!(whole.value("rc-1").as_deref(), Some("rc-1"), "empty extract: the whole tag");
    assert_eq!(whole.value("1-rc-1"), None);
}

#[test]
fn numerical_rejects_values_that_are_not_numbers() {
    let s = run(&["10", "2", "9.5", "latest", "NaN", "1e400"], json!({"policy": "numerical"}));
    assert_eq!(s.winner.as_deref(), Some("10"));
    assert_eq!(s.newest_matching, ["10", "9.5", "2"]);
    assert_eq!(reasons(&s), [("latest", NotNumerical), ("NaN", NotNumerical), ("1e400", NotNumerical)]);
    // Equal numbers: the tag sorting last wins, whatever the listing order.
    assert_eq!(run(&["01", "1"], json!({"policy": "numerical"})).winner.as_deref(), Some("1"));
    assert_eq!(run(&["1", "01"], json!({"policy": "numerical"})).winner.as_deref(), Some("1"));
}

#[test]
fn default_policy_is_todays_semver() {
    let default = policy(json!({"semanticVersion": "^1"})).unwrap();
    assert_eq!(default, Constraint::parse("^1").unwrap());
    assert_eq!(default, policy(json!({"semanticVersion": "^1", "policy": "semver"})).unwrap());
    assert_eq!(default.as_str(), "^1");
    let s = select(&["1.0.0", "latest"], &default);
    assert_eq!(reasons(&s), [("latest", NotSemver)]);
    let filtered = policy(json!({"semanticVersion": "^1", "filterTags": {"pattern": "^v"}})).unwrap();
    assert_ne!(default.identity(), filtered.identity(), "a filter is another request");
}

#[test]
fn bad_policies_name_the_field_to_fix() {
    let message = |registry| policy(registry).unwrap_err().to_string();
    assert_eq!(
        message(json!({"policy": "numerical", "filterTags": {"pattern": "(?P<ts"}})),
        "invalid filterTags.pattern \"(?P<ts\": regex parse error: (?P<ts ^ error: unclosed capture group name"
    );
    assert_eq!(
        message(json!({"policy": "numerical", "filterTags": {"pattern": "^(?P<ts>\\d+)$", "extract": "$build"}})),
        "invalid filterTags.extract \"$build\": names group \"build\", which filterTags.pattern does not define (its groups: ts)"
    );
    assert!(message(json!({})).contains("policy semver (the default) needs a semanticVersion"));
    assert!(
        message(json!({"policy": "alphabetical", "semanticVersion": "^1"})).contains("applies to policy semver only")
    );
    assert!(message(json!({"semanticVersion": "^1", "order": "desc"})).starts_with("invalid order \"desc\""));
    let err = policy(json!({"policy": "numerical", "filterTags": {"pattern": "("}})).unwrap_err();
    assert_eq!(err.metric_label(), "invalid_tag_policy");
}
