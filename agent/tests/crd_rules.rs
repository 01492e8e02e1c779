//! The CRD's CEL rule for `semanticVersion` (checked by the API server at admission) accepts
//! exactly what the agent's constraint parser (the semver crate) accepts, on a set of cases.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use alustan_shared::spec::SEMVER_CONSTRAINT_RULE;

/// The regex inside `self.matches('…')`.
fn rule_regex() -> regex::Regex {
    let start = SEMVER_CONSTRAINT_RULE.find("matches('").unwrap() + "matches('".len();
    let end = SEMVER_CONSTRAINT_RULE.rfind("')").unwrap();
    regex::Regex::new(&SEMVER_CONSTRAINT_RULE[start..end]).unwrap()
}

#[test]
fn the_crd_rule_accepts_what_the_agent_parses() {
    let regex = rule_regex();
    for constraint in [
        "~1.0.0",
        "^2",
        ">=1.2, <2",
        "*",
        "1.2.3",
        "=1.2.3",
        "~1",
        "^0.1.2-rc.1",
        "1.x",
        "1.2.*",
        ">= 1.2",
        "<=3.0.0+build.5",
        " ^1.2 ",
        "latest",
        "1.0.0.0",
        ">=1.2 <2",
        "",
        "1.2.3-",
        "^",
        "~1.0,",
        "1.2.3 || 2",
        "v1.0",
        "X",
        "^1.x.3",
    ] {
        let agent = semver::VersionReq::parse(constraint.trim()).is_ok();
        assert_eq!(regex.is_match(constraint), agent, "{constraint:?}: the agent says {agent}");
    }
}
