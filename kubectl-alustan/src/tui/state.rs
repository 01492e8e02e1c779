//! What the TUI knows: the objects from the watch, the view stack and the interaction state.
//! Rendering reads only this.

use std::collections::{BTreeMap, HashMap};

use alustan_shared::Terraform;
use jiff::{SignedDuration, Timestamp};

pub use crate::agent::AgentHealth;

use super::update::Effect;

/// How long a flash message stays in the footer.
pub const FLASH_FOR: SignedDuration = SignedDuration::from_secs(4);
/// How long a row that just changed stays highlighted.
pub const HIGHLIGHT_FOR: SignedDuration = SignedDuration::from_secs(3);
/// Log lines kept in memory for the logs view (older ones are dropped).
pub const MAX_LOG_LINES: usize = 5_000;

/// Identifies an object: namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), name: name.into() }
    }

    pub fn of(object: &Terraform) -> Self {
        Self::new(
            object.metadata.namespace.clone().unwrap_or_default(),
            object.metadata.name.clone().unwrap_or_default(),
        )
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The screens; the view stack always starts with `List`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViewKind {
    List,
    Describe,
    Yaml,
    Outputs,
    Credentials,
    Logs,
    Plan,
    Help,
}

impl ViewKind {
    pub fn title(self) -> &'static str {
        match self {
            ViewKind::List => "Terraforms",
            ViewKind::Describe => "Describe",
            ViewKind::Yaml => "YAML",
            ViewKind::Outputs => "Outputs",
            ViewKind::Credentials => "Credentials",
            ViewKind::Logs => "Logs",
            ViewKind::Plan => "Plan",
            ViewKind::Help => "Help",
        }
    }
}

/// One entry of the view stack: which screen, about which object, scrolled how far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub kind: ViewKind,
    pub object: Option<ObjectKey>,
    pub scroll: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    #[default]
    Name,
    Age,
    State,
}

/// Where typed characters go when not interpreted as keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// `/`: editing the filter; Enter applies, Esc clears.
    Filter(String),
    /// `:`: a command such as `ns infra`, `ns all`, `q`.
    Command(String),
}

/// A question the user must answer before an effect runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    pub question: String,
    pub effect: Effect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashLevel {
    Info,
    Warn,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub text: String,
    pub level: FlashLevel,
    pub until: Timestamp,
}

/// Where the UI is connected: shown in the header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    pub context: String,
    pub cluster: String,
    /// `None`: all namespaces.
    pub namespace: Option<String>,
    pub agent: AgentHealth,
}

/// A revealed credential: shown only in the credentials view of its object, forgotten on leaving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revealed {
    pub object: ObjectKey,
    pub credential: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub header: Header,
    /// The reflector's store: every object the watch knows.
    pub objects: BTreeMap<ObjectKey, Terraform>,
    /// False until the initial listing is done (the list shows "loading").
    pub synced: bool,
    /// Objects seen during a relisting, to drop the ones that vanished when it completes.
    pub relisted: Option<Vec<ObjectKey>>,
    /// The visible rows: `objects` filtered and sorted.
    pub rows: Vec<ObjectKey>,
    pub selected: usize,
    /// First visible row of the list (kept so the selection moves without the page jumping).
    pub offset: usize,
    /// Rows the list can show, from the last resize.
    pub page: usize,
    pub views: Vec<View>,
    pub filter: String,
    pub input: Option<Input>,
    pub sort: SortKey,
    pub sort_descending: bool,
    pub confirm: Option<Confirm>,
    pub flash: Option<Flash>,
    pub error: Option<String>,
    pub changed: HashMap<ObjectKey, Timestamp>,
    pub readonly: bool,
    pub now: Timestamp,
    /// Selected credential in the credentials view.
    pub credential: usize,
    pub revealed: Option<Revealed>,
    pub logs: Logs,
    /// The described object's Events, folded per reason (`None` until loaded).
    pub events: Option<(ObjectKey, Vec<crate::events::Folded>)>,
}

/// The followed run log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Logs {
    pub lines: Vec<String>,
    pub ended: bool,
    /// Which run: 0 is the latest (`[` goes back, `]` forward); only the latest moves on to the
    /// next run when its log ends.
    pub run: usize,
    /// The Job whose log is shown (`None`: the resource has no runs yet).
    pub job: Option<String>,
}

impl State {
    pub fn new(header: Header, readonly: bool, now: Timestamp) -> Self {
        Self {
            header,
            objects: BTreeMap::new(),
            synced: false,
            relisted: None,
            rows: Vec::new(),
            selected: 0,
            offset: 0,
            page: 20,
            views: vec![View { kind: ViewKind::List, object: None, scroll: 0 }],
            filter: String::new(),
            input: None,
            sort: SortKey::Name,
            sort_descending: false,
            confirm: None,
            flash: None,
            error: None,
            changed: HashMap::new(),
            readonly,
            now,
            credential: 0,
            revealed: None,
            logs: Logs::default(),
            events: None,
        }
    }

    pub fn view(&self) -> &View {
        // The stack never empties: update refuses to pop the list.
        self.views.last().unwrap_or(&LIST_VIEW)
    }

    pub fn view_mut(&mut self) -> Option<&mut View> {
        self.views.last_mut()
    }

    pub fn selected_key(&self) -> Option<&ObjectKey> {
        self.rows.get(self.selected)
    }

    /// The object the current view is about: the view's own, or the list's selection.
    pub fn target(&self) -> Option<&ObjectKey> {
        self.view().object.as_ref().or_else(|| self.selected_key())
    }

    pub fn object(&self, key: &ObjectKey) -> Option<&Terraform> {
        self.objects.get(key)
    }

    /// Whether a row changed recently enough to be highlighted.
    pub fn recently_changed(&self, key: &ObjectKey) -> bool {
        self.changed.get(key).is_some_and(|at| self.now.duration_since(*at) < HIGHLIGHT_FOR)
    }

    /// The first row to draw for a list `height` rows high, keeping the selection visible.
    pub fn visible_offset(&self, height: usize) -> usize {
        let height = height.max(1);
        if self.selected < self.offset {
            self.selected
        } else if self.selected >= self.offset + height {
            self.selected + 1 - height
        } else {
            self.offset.min(self.rows.len().saturating_sub(1))
        }
    }

    /// Rebuilds `rows` from `objects`, keeping the selected object selected.
    pub fn refresh_rows(&mut self) {
        let keep = self.selected_key().cloned();
        let filter = self.filter.to_lowercase();
        let mut rows: Vec<&Terraform> =
            self.objects.values().filter(|object| matches_filter(object, &filter)).collect();
        match self.sort {
            // `objects` is already ordered by namespace/name.
            SortKey::Name => {}
            SortKey::Age => rows.sort_by_key(|object| std::cmp::Reverse(created(object))),
            SortKey::State => rows.sort_by_key(|object| state_rank(object)),
        }
        if self.sort_descending {
            rows.reverse();
        }
        self.rows = rows.into_iter().map(ObjectKey::of).collect();
        self.selected = keep
            .and_then(|key| self.rows.iter().position(|row| *row == key))
            .unwrap_or(self.selected)
            .min(self.rows.len().saturating_sub(1));
        self.offset = self.visible_offset(self.page);
    }
}

static LIST_VIEW: View = View { kind: ViewKind::List, object: None, scroll: 0 };

/// Filter text matches the name, namespace, state or applied tag (case-insensitive).
fn matches_filter(object: &Terraform, filter: &str) -> bool {
    if filter.is_empty() {
        return true;
    }
    let status = object.status.as_ref();
    let fields = [
        object.metadata.name.as_deref(),
        object.metadata.namespace.as_deref(),
        status.and_then(|s| s.state).map(alustan_shared::State::as_str),
        status.and_then(|s| s.applied.as_ref()).map(|a| a.tag.as_str()),
    ];
    fields.into_iter().flatten().any(|field| field.to_lowercase().contains(filter))
}

pub fn created(object: &Terraform) -> Option<Timestamp> {
    object.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Sorting by state puts what needs attention first.
fn state_rank(object: &Terraform) -> u8 {
    use alustan_shared::State as S;
    match object.status.as_ref().and_then(|s| s.state) {
        Some(S::Error) => 0,
        Some(S::Failed) => 1,
        // A plan waiting for approval needs someone: right after the failures.
        Some(S::Planned) => 2,
        Some(S::Progressing) => 3,
        None => 4,
        Some(S::Success) => 5,
        Some(S::Completed) => 6,
    }
}
