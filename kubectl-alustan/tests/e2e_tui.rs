//! `kubectl alustan tui` in a real terminal (tmux) against testenv: the header shows the agent's
//! Lease up, then stale once it is no longer renewed; the watch fills the list,
//! `/` filters, `d` describes, `s` + `y` sets the sync annotation, `c` + `r` + `y` reveals a password, `l` streams the run's
//! log, `q` restores the terminal; `p` opens a plan and `a` + `y` approves it.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod e2e_support;

use std::time::Duration;

use alustan_shared::Terraform;
use alustan_shared::meta::RESYNC_REQUESTED_AT;
use alustan_testenv::TestEnv;
use e2e_support::{BIN, completed_status, create, set_status};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

struct Tmux {
    socket: String,
}

impl Tmux {
    async fn run(&self, args: &[&str]) -> String {
        let out = tokio::process::Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().await.unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    async fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "tui"]).await
    }

    async fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "tui"];
        args.extend_from_slice(keys);
        self.run(&args).await;
    }

    /// Waits until the screen satisfies `ok`.
    async fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen().await;
            if ok(&screen) {
                return screen;
            }
            assert!(tokio::time::Instant::now() < deadline, "waiting for {what}; screen:\n{screen}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Blocking is fine here: the test is over and the server is no longer needed.
        let _ = std::process::Command::new("tmux").args(["-L", &self.socket, "kill-server"]).status();
    }
}

/// `default/staging` completed, its latest run `staging-deploy-7` a Job the kubelet ran; the
/// status written, for a test to extend.
async fn staging_with_a_run() -> (TestEnv, kube::Client, serde_json::Value) {
    let env = TestEnv::start().await.unwrap();
    let client = env.client().unwrap();
    create(&client, "default", "staging").await;
    e2e_support::run_job(&env, "staging-deploy-7").await;
    let mut status = completed_status("default");
    status["history"][0]["jobName"] = json!("staging-deploy-7");
    set_status(&client, "default", "staging", status.clone()).await;
    (env, client, status)
}

#[tokio::test]
async fn tui_in_tmux_filters_describes_syncs_and_restores_the_terminal() {
    let (env, client, _) = staging_with_a_run().await;
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "argocd-admin", "namespace": "default"},
        "stringData": {"password": "s3cret-argo"},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), "default").create(&PostParams::default(), &secret).await.unwrap();
    create(&client, "default", "payments").await;
    // Two deploys' Events: describe's Events pane shows the reason once, with the latest note.
    deploying_events(&client).await;
    // The agent's Lease, renewed every 2 s as the agent does, until the test stops renewing it.
    e2e_support::namespace(&client, "alustan-system").await;
    let stop_renewing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let renewer = tokio::spawn({
        let (client, stop) = (client.clone(), stop_renewing.clone());
        async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                e2e_support::agent_lease(&client, "alustan-system", "alustan-agent-0", Duration::ZERO).await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    });
    let log = env.work_dir().join("tui.log");
    let tmux = Tmux { socket: format!("alustan-tui-{}", std::process::id()) };
    let command = format!(
        "ALUSTAN_LOG_FILE={} {BIN} tui --kubeconfig {}; echo EXITED:$?; sleep 60",
        log.display(),
        env.kubeconfig().display()
    );
    tmux.run(&["new-session", "-d", "-s", "tui", "-x", "120", "-y", "36", &command]).await;

    tmux.wait_for("both resources listed", |s| s.contains("staging") && s.contains("payments")).await;
    tmux.wait_for("the agent up in the header", |s| s.contains("agent: up")).await;
    // The agent stops renewing; a later look-up (every 5 s) shows when it last did.
    stop_renewing.store(true, std::sync::atomic::Ordering::SeqCst);
    renewer.await.unwrap(); // no renewal in flight can overwrite the stale one below
    e2e_support::agent_lease(&client, "alustan-system", "alustan-agent-0", Duration::from_secs(180)).await;
    tmux.wait_for("the agent stale in the header", |s| s.contains("agent: stale 3m")).await;
    tmux.keys(&["/", "stag", "Enter"]).await;
    tmux.wait_for("the filter", |s| s.contains("staging") && !s.contains("payments")).await;
    tmux.keys(&["d"]).await;
    tmux.wait_for("describe", |s| s.contains("Why this version") && s.contains("~1.0.0 matched 3 of 6 tags")).await;
    tmux.keys(&["End"]).await;
    tmux.wait_for("the Events pane, one row per reason with its latest note", |s| {
        s.contains("Deploying")
            && s.contains("(x2 over")
            && s.contains("deploying 1.0.3 (new image)")
            && !s.contains("deploying 1.0.2")
    })
    .await;
    tmux.keys(&["Home"]).await;
    tmux.keys(&["s"]).await;
    // The agent's Lease is stale: the question says nothing runs, not "A run starts now".
    tmux.wait_for("the confirmation", |s| {
        s.contains("Sync default/staging?") && s.contains("the agent is not running")
    })
    .await;
    tmux.keys(&["y"]).await;
    annotation(&client, "staging", RESYNC_REQUESTED_AT).await;
    tmux.wait_for("the flash", |s| s.contains("sync of default/staging requested")).await;
    // Credentials: masked until `r` + `y` reveals the selected one through the user's RBAC.
    tmux.keys(&["c"]).await;
    tmux.wait_for("credentials", |s| s.contains("argocd") && !s.contains("s3cret-argo")).await;
    tmux.keys(&["r"]).await;
    tmux.wait_for("the reveal question", |s| s.contains("Reveal the password of `argocd`")).await;
    tmux.keys(&["y"]).await;
    tmux.wait_for("the revealed password", |s| s.contains("s3cret-argo")).await;
    // Logs of the latest run, streamed from its pod.
    tmux.keys(&["Escape"]).await;
    tmux.wait_for("back in describe", |s| !s.contains("s3cret-argo")).await;
    tmux.keys(&["l"]).await;
    tmux.wait_for("the run's log, its sealed outputs as one line", |s| {
        s.contains("terraform apply: 3 added") && s.contains("[sealed outputs: 40 bytes]") && !s.contains("9f9f")
    })
    .await;
    tmux.keys(&["q"]).await;
    let screen = tmux.wait_for("the exit", |s| s.contains("EXITED:0")).await;
    // Restored: the alternate screen is off and none of the UI is left on the screen.
    assert_eq!(tmux.run(&["display-message", "-p", "-t", "tui", "#{alternate_on}"]).await.trim(), "0");
    assert!(!screen.contains("Why this version"), "{screen}");
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(log.contains("tui starting"), "logs go to the file: {log}");
}

/// The value of annotation `key` of `default/NAME`, once the TUI has written it.
async fn annotation(client: &kube::Client, name: &str, key: &str) -> String {
    let api: Api<Terraform> = Api::namespaced(client.clone(), "default");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let annotations = api.get(name).await.unwrap().metadata.annotations.unwrap_or_default();
        if let Some(value) = annotations.get(key) {
            return value.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{key} was not written");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two `Deploying` Events of `default/staging`, the later about 1.0.3.
async fn deploying_events(client: &kube::Client) {
    let uid = api_uid(client, "staging").await;
    let first = ("staging.1", "Deploying", "Normal", "deploying 1.0.2 (new resource)", "2026-01-10T10:59:00Z", 1);
    e2e_support::staging_event(client, &uid, first).await;
    let second = ("staging.2", "Deploying", "Normal", "deploying 1.0.3 (new image)", "2026-01-10T11:00:00Z", 1);
    e2e_support::staging_event(client, &uid, second).await;
}

async fn api_uid(client: &kube::Client, name: &str) -> String {
    Api::<Terraform>::namespaced(client.clone(), "default").get(name).await.unwrap().metadata.uid.unwrap()
}

/// At 80×24: the footer keeps `<q> quit`; the logs view names its run, `[`/`]` pick another,
/// and following the latest run moves on to the next one when the agent starts it.
#[tokio::test]
async fn tui_logs_pick_runs_and_follow_on_at_80x24() {
    let (env, client, mut status) = staging_with_a_run().await;
    let tmux = Tmux { socket: format!("alustan-tui80-{}", std::process::id()) };
    let command = format!("{BIN} tui --kubeconfig {}; echo EXITED:$?; sleep 60", env.kubeconfig().display());
    tmux.run(&["new-session", "-d", "-s", "tui", "-x", "80", "-y", "24", &command]).await;
    tmux.wait_for("the list, its footer with quit", |s| s.contains("staging") && s.contains("<q> quit")).await;
    tmux.keys(&["l"]).await;
    tmux.wait_for("the latest run's log, named in the title", |s| {
        s.contains("1/2 Deploy 1.0.3 Succeeded") && s.contains("terraform apply: 3 added")
    })
    .await;
    tmux.keys(&["["]).await;
    tmux.wait_for("the run before", |s| s.contains("2/2 Deploy 1.0.2 Failed") && s.contains("(no log:")).await;
    tmux.keys(&["]"]).await;
    tmux.wait_for("back to the latest", |s| s.contains("1/2 Deploy 1.0.3 Succeeded")).await;
    // The agent starts the post-deploy: its log follows on under a separator.
    e2e_support::run_job(&env, "staging-postdeploy-8").await;
    let post = json!({"action": "PostDeploy", "jobName": "staging-postdeploy-8", "image": "iac:1.0.3", "tag": "1.0.3",
                      "startTime": "2026-01-10T11:01:00Z", "result": "Running"});
    status["history"].as_array_mut().unwrap().insert(0, post);
    set_status(&client, "default", "staging", status).await;
    tmux.wait_for("the next run's log", |s| {
        s.contains("— next run: PostDeploy 1.0.3 Running —") && s.matches("terraform apply: 3 added").count() == 2
    })
    .await;
    tmux.keys(&["q"]).await;
    tmux.wait_for("the exit", |s| s.contains("EXITED:0")).await;
}

/// `p` opens the Plan view of a resource whose plan waits for approval (marked and counted), `a`
/// asks with the counts, `y` writes the approval of that plan id.
#[tokio::test]
async fn tui_plan_view_approves_the_plan_after_a_confirmation_and_follows_it_to_success() {
    let env = TestEnv::start().await.unwrap();
    let client = env.client().unwrap();
    let object: Terraform = serde_json::from_value(json!({
        "apiVersion": "alustan.io/v1alpha1", "kind": "Terraform", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"scripts": {"deploy": "deploy", "plan": "plan"}, "approval": "Manual",
                 "containerRegistry": {"imageName": "alustan/infrastructure", "semanticVersion": "~1.0.0"}},
    }))
    .unwrap();
    Api::<Terraform>::namespaced(client.clone(), "default").create(&PostParams::default(), &object).await.unwrap();
    let plan = json!({"id": "p-42", "jobName": "web-plan-1", "generation": 1, "trigger": "Change",
                      "time": "2026-01-10T11:00:00Z", "counts": {"create": 2, "update": 1, "delete": 0, "replace": 0},
                      "changes": [{"address": "aws_instance.web[0]", "action": "create"},
                                  {"address": "aws_s3_bucket.logs", "action": "update"}],
                      "decision": "Pending"});
    set_status(
        &client,
        "default",
        "web",
        json!({"state": "Planned", "message": "plan p-42 waits for approval", "plan": plan}),
    )
    .await;
    let tmux = Tmux { socket: format!("alustan-tuiplan-{}", std::process::id()) };
    let command = format!("{BIN} tui --kubeconfig {}; echo EXITED:$?; sleep 60", env.kubeconfig().display());
    tmux.run(&["new-session", "-d", "-s", "tui", "-x", "100", "-y", "30", &command]).await;
    tmux.wait_for("the planned resource, marked and counted", |s| {
        s.contains("web ●") && s.contains("Planned") && s.contains("1 plan waiting")
    })
    .await;
    tmux.keys(&["p"]).await;
    tmux.wait_for("the plan view", |s| {
        s.contains("Plan(default/web)") && s.contains("+ aws_instance.web[0]") && s.contains("~ aws_s3_bucket.logs")
    })
    .await;
    tmux.keys(&["a"]).await;
    tmux.wait_for("the confirmation with the counts", |s| {
        s.contains("Approve plan p-42 of default/web: 2 to add, 1 to change") && s.contains("0 to replace?")
    })
    .await;
    tmux.keys(&["y"]).await;
    assert_eq!(annotation(&client, "web", alustan_shared::meta::APPROVE_PLAN).await, "p-42");
    tmux.wait_for("the flash", |s| s.contains("approved plan p-42 of default/web")).await;
    tmux.keys(&["Escape"]).await;
    // The agent's answer, as it writes it (its side is proven by agent/tests/e2e_plans.rs and
    // `make demo`): the deploy of the approved plan, then its success. The TUI follows live.
    let applied = json!({"id": "p-42", "jobName": "web-plan-1", "generation": 1, "trigger": "Change",
                         "time": "2026-01-10T11:00:00Z", "counts": {"create": 2, "update": 1, "delete": 0, "replace": 0},
                         "decision": "Approved"});
    set_status(
        &client,
        "default",
        "web",
        json!({"state": "Progressing", "message": "deploying v1.0.1 (plan p-42, plan approved)", "plan": applied}),
    )
    .await;
    tmux.wait_for("the approved plan deploying", |s| s.contains("Progressing") && !s.contains("1 plan waiting")).await;
    let mut done = applied.clone();
    done["decision"] = json!("Applied");
    set_status(&client, "default", "web", json!({"state": "Success", "message": "deployed v1.0.1", "plan": done}))
        .await;
    tmux.wait_for("the plan applied", |s| s.contains("Success") && !s.contains("web ●")).await;
    tmux.keys(&["q"]).await;
    tmux.wait_for("the exit", |s| s.contains("EXITED:0")).await;
}
