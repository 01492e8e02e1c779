//! The TUI connected to a cluster: a watch + reflector task turns watch events into actions,
//! an effects task performs what `update` asked for and answers with actions. `update` stays
//! pure; this is the only TUI code that does I/O.

use std::sync::mpsc;

use alustan_shared::Terraform;
use futures::{AsyncBufReadExt as _, StreamExt as _};
use jiff::Timestamp;
use kube::api::ListParams;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::json;
use tokio::runtime::Runtime;
use tokio::sync::mpsc as async_mpsc;
use tokio::task::JoinHandle;

use super::action::Action;
use super::app::{self, Io};
use super::state::{AgentHealth, Header, ObjectKey, State};
use super::update::Effect;
use crate::agent;
use crate::cli::KubeFlags;
use crate::commands::{self, credentials, describe, logs, plan, sync};
use crate::errors::CliError;
use crate::kube_client::Connection;

/// How often the header's agent health is looked up (the agent renews its Lease every 2 s).
const AGENT_REFRESH: std::time::Duration = std::time::Duration::from_secs(5);

/// The loop's side of the channels.
struct Live {
    actions: mpsc::Receiver<Action>,
    effects: async_mpsc::UnboundedSender<Effect>,
}

impl Io for Live {
    fn poll(&mut self) -> Vec<Action> {
        self.actions.try_iter().collect()
    }

    fn perform(&mut self, effect: Effect) {
        // Fails only once the effects task is gone, i.e. while quitting.
        let _ = self.effects.send(effect);
    }
}

/// Connects, checks the CRD is there (a clear error beats an empty screen), then runs the UI.
pub fn run(runtime: &Runtime, flags: &KubeFlags, readonly: bool) -> Result<(), CliError> {
    let log = crate::logging::to_file();
    tracing::info!(readonly, "tui starting");
    let conn = runtime.block_on(commands::connect(flags))?;
    runtime.block_on(commands::list(&conn, &ListParams::default().limit(1)))?;
    let header = Header {
        context: conn.context.clone(),
        cluster: conn.cluster.clone(),
        namespace: conn.scope().map(str::to_owned),
        agent: AgentHealth::Unknown,
    };
    let mut state = State::new(header, readonly, Timestamp::now());
    let (actions_tx, actions) = mpsc::channel();
    let (effects, effects_rx) = async_mpsc::unbounded_channel();
    runtime.spawn(agent_health(conn.client.clone(), flags.agent_namespace.clone(), actions_tx.clone()));
    runtime.spawn(effects_task(conn, actions_tx, effects_rx));
    let result = app::run(&mut state, &mut Live { actions, effects });
    result.map_err(|error| {
        tracing::error!(%error, "tui failed");
        let log = log.map(|path| format!(" (log: {})", path.display())).unwrap_or_default();
        CliError::Other(format!("tui: {error}{log}"))
    })
}

/// Watches the scope through a reflector (its store serves the effects) and reports every
/// event; the watcher relists and backs off by itself on errors.
async fn watch(conn: Connection, writer: reflector::store::Writer<Terraform>, tx: mpsc::Sender<Action>) {
    let stream =
        reflector::reflector(writer, watcher(commands::scoped(&conn), watcher::Config::default()).default_backoff());
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        let action = match event {
            Ok(watcher::Event::Init) => Action::InitialListStarted,
            Ok(watcher::Event::InitApply(object) | watcher::Event::Apply(object)) => Action::Applied(Box::new(object)),
            Ok(watcher::Event::InitDone) => Action::InitialListDone,
            Ok(watcher::Event::Delete(object)) => Action::Deleted(ObjectKey::of(&object)),
            Err(error) => {
                tracing::warn!(%error, "watch failed; retrying");
                Action::Error(format!("watch: {error} (retrying)"))
            }
        };
        if tx.send(action).is_err() {
            return; // the UI is gone
        }
    }
}

fn start_watch(conn: &Connection, tx: &mpsc::Sender<Action>) -> (Store<Terraform>, JoinHandle<()>) {
    let (store, writer) = reflector::store();
    (store, tokio::spawn(watch(conn.clone(), writer, tx.clone())))
}

/// Performs effects one after another (each quick), except logs, which stream in their own task.
async fn effects_task(
    mut conn: Connection,
    tx: mpsc::Sender<Action>,
    mut effects: async_mpsc::UnboundedReceiver<Effect>,
) {
    let (mut store, mut watch) = start_watch(&conn, &tx);
    let mut logs_task: Option<JoinHandle<()>> = None;
    while let Some(effect) = effects.recv().await {
        tracing::info!(?effect, "performing");
        let reply = match effect {
            Effect::RequestSync(key) => request(&conn, &key, sync::Kind::Sync).await,
            Effect::RequestResync(key) => request(&conn, &key, sync::Kind::Resync).await,
            Effect::SetSuspend { object, suspend } => set_suspend(&conn, &object, suspend).await,
            Effect::Verdict { object, verdict, plan } => decide(&conn, &object, verdict, &plan).await,
            Effect::RevealSecret { object, credential, secret } => {
                match credentials::read_key(&conn, &secret.namespace, &secret.name, &secret.key).await {
                    Ok(value) => Action::SecretRevealed { object, credential, value },
                    Err(why) => Action::Flash(format!("cannot reveal {credential}: {why}")),
                }
            }
            Effect::StartLogs { object, job, follow } => {
                if let Some(task) = logs_task.take() {
                    task.abort();
                }
                logs_task =
                    Some(tokio::spawn(stream_logs(conn.in_namespace(&object.namespace), job, follow, tx.clone())));
                continue;
            }
            Effect::StopLogs => {
                if let Some(task) = logs_task.take() {
                    task.abort();
                }
                continue;
            }
            Effect::LoadEvents(key) => {
                let cached = store.get(&ObjectRef::new(&key.name).within(&key.namespace)).map(|o| (*o).clone());
                match cached {
                    Some(object) => match describe::list_events(&conn.client, &object).await {
                        Ok(events) => Action::Events { object: key, events: crate::events::fold(&events) },
                        Err(error) => Action::Flash(format!("cannot list events: {}", first_line(&error))),
                    },
                    None => continue,
                }
            }
            Effect::SwitchNamespace(namespace) => {
                watch.abort();
                conn = match &namespace {
                    Some(namespace) => conn.in_namespace(namespace),
                    None => Connection { all_namespaces: true, ..conn.clone() },
                };
                (store, watch) = start_watch(&conn, &tx);
                continue;
            }
            Effect::Quit => break,
        };
        if tx.send(reply).is_err() {
            break;
        }
    }
    watch.abort();
}

async fn request(conn: &Connection, key: &ObjectKey, kind: sync::Kind) -> Action {
    match sync::request(&conn.in_namespace(&key.namespace), &key.name, kind).await {
        Ok(token) => {
            let what = if kind == sync::Kind::Sync { "sync" } else { "resync" };
            Action::Flash(format!("{what} of {key} requested ({token})"))
        }
        Err(error) => Action::Error(first_line(&error)),
    }
}

/// Approves or rejects through the command line's code (the same checks, the same write).
async fn decide(conn: &Connection, key: &ObjectKey, verdict: crate::plans::Verdict, plan: &str) -> Action {
    match plan::decide(&conn.in_namespace(&key.namespace), &key.name, verdict, Some(plan)).await {
        Ok((_, plan)) => Action::Flash(format!("{} plan {} of {key}: {}", verdict.past(), plan.id, plan.counts_text())),
        Err(error) => Action::Error(first_line(&error)),
    }
}

async fn set_suspend(conn: &Connection, key: &ObjectKey, suspend: bool) -> Action {
    let patch = json!({"spec": {"suspend": suspend}});
    match commands::merge_patch(&conn.in_namespace(&key.namespace), &key.name, &patch).await {
        Ok(_) => {
            let verb = if suspend { "suspended" } else { "resumed" };
            Action::Flash(format!("{key} {verb} (spec change: GitOps tools may revert it unless made in git)"))
        }
        Err(error) => Action::Error(first_line(&error)),
    }
}

/// A run's log, line by line; ends with `LogEnded`.
async fn stream_logs(conn: Connection, job: String, follow: bool, tx: mpsc::Sender<Action>) {
    match logs::open_job(&conn, &conn.namespace, &job, follow).await {
        Ok(stream) => {
            let mut lines = std::pin::pin!(stream.lines());
            let mut sealed = logs::SealedBlocks::default();
            while let Some(Ok(line)) = lines.next().await {
                for line in sealed.push(line) {
                    if tx.send(Action::LogLine(line)).is_err() {
                        return;
                    }
                }
            }
            if let Some(line) = sealed.finish() {
                let _ = tx.send(Action::LogLine(line));
            }
        }
        Err(error) => {
            let _ = tx.send(Action::LogLine(format!("(no log: {})", first_line(&error))));
        }
    }
    let _ = tx.send(Action::LogEnded);
}

/// Looks the agent's Lease up every [`AGENT_REFRESH`] until the UI is gone. The header judges
/// up or stale from the Lease's times on every tick, so it goes stale even if a look-up hangs.
async fn agent_health(client: kube::Client, namespace: Option<String>, tx: mpsc::Sender<Action>) {
    let mut every = tokio::time::interval(AGENT_REFRESH);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let health = agent::health(&client, namespace.as_deref()).await;
        if tx.send(Action::AgentHealth(health)).is_err() {
            return; // the UI is gone
        }
    }
}

/// Flash and banner are one line high; the fix is in the log and in the CLI's message.
fn first_line(error: &CliError) -> String {
    let text = error.to_string();
    tracing::warn!(%text, "effect failed");
    text.lines().next().unwrap_or_default().to_owned()
}
