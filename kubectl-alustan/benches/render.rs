//! Frame render time of the list for 5,000 resources at 200×50, against 50 resources (only
//! visible rows are built, so the ratio should stay near 1); frames whose rows change between
//! draws (a watch event before each); and a burst of 2,000 watch events at 5,000 resources
//! applied as the TUI applies them, one `update` per event: how long until the last change
//! can be drawn (goal < 1 s). Prints figures; asserts nothing.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use kubectl_alustan::tui::action::Action;
use kubectl_alustan::tui::app::coalesce;
use kubectl_alustan::tui::fixtures::{self, NOW};
use kubectl_alustan::tui::state::{Header, State};
use kubectl_alustan::tui::ui::draw;
use kubectl_alustan::tui::update::update;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const WIDTH: u16 = 200;
const HEIGHT: u16 = 50;
const FRAMES: u32 = 300;

fn state(count: usize) -> State {
    let header = Header { context: "kind-alustan".into(), cluster: "kind-alustan".into(), ..Header::default() };
    let mut state = State::new(header, false, NOW);
    update(&mut state, Action::Resize { width: WIDTH, height: HEIGHT });
    for object in fixtures::many(count) {
        update(&mut state, Action::Applied(Box::new(object)));
    }
    update(&mut state, Action::InitialListDone);
    // Select a row in the middle so the visible window is not the first page.
    state.selected = count / 2;
    state.offset = state.visible_offset(state.page);
    state
}

/// Median time of one frame, over `FRAMES` frames after a warm-up.
fn frame_time(state: &State) -> Duration {
    let mut terminal = Terminal::new(TestBackend::new(WIDTH, HEIGHT)).unwrap();
    for _ in 0..20 {
        terminal.draw(|frame| draw(frame, state)).unwrap();
    }
    let mut times: Vec<Duration> = (0..FRAMES)
        .map(|_| {
            let start = Instant::now();
            terminal.draw(|frame| draw(frame, state)).unwrap();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

/// Median frame time when one resource changes state before each frame.
fn changing_frame_time(state: &mut State, count: usize) -> Duration {
    let mut terminal = Terminal::new(TestBackend::new(WIDTH, HEIGHT)).unwrap();
    let objects = fixtures::many(count);
    let samples = fixtures::samples();
    let mut times: Vec<Duration> = (0..FRAMES as usize)
        .map(|frame| {
            // A visible row takes another sample's status (another state, message, version).
            let index = (state.offset + frame % usize::from(HEIGHT / 2)).min(count - 1);
            let mut changed = objects[index].clone();
            changed.status.clone_from(&samples[(frame + 1) % samples.len()].status);
            let start = Instant::now();
            update(state, Action::Applied(Box::new(changed)));
            terminal.draw(|f| draw(f, state)).unwrap();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

/// A burst of `events` status changes spread over `count` resources, applied one `update` per
/// event, or (`batched`) folded by the loop's `coalesce` as the TUI applies them: the total
/// time, and the time per event.
fn burst(state: &mut State, count: usize, events: usize, batched: bool) -> (Duration, Duration) {
    let objects = fixtures::many(count);
    let samples = fixtures::samples();
    let changes: Vec<_> = (0..events)
        .map(|e| {
            let mut changed = objects[(e * 7919) % count].clone();
            changed.status.clone_from(&samples[e % samples.len()].status);
            changed
        })
        .collect();
    let start = Instant::now();
    if batched {
        // As the loop hands them over: everything that arrived since the last frame at once.
        for action in coalesce(changes.into_iter().map(|c| Action::Applied(Box::new(c))).collect()) {
            update(state, action);
        }
    } else {
        for changed in changes {
            update(state, Action::Applied(Box::new(changed)));
        }
    }
    let took = start.elapsed();
    (took, took / u32::try_from(events).unwrap_or(u32::MAX))
}

fn main() {
    let started = Instant::now();
    let large = state(5_000);
    let load = started.elapsed();
    let small = state(50);
    let (small_time, large_time) = (frame_time(&small), frame_time(&large));
    println!("initial list of 5,000 resources into the state: {load:.2?}");
    println!("list frame at {WIDTH}x{HEIGHT}, median of {FRAMES}:");
    println!("  50 resources:    {small_time:>10.1?}");
    println!("  5,000 resources: {large_time:>10.1?}  (goal: < 5 ms)");
    println!("  ratio 5,000/50:  {:.2}", large_time.as_secs_f64() / small_time.as_secs_f64());
    let mut changing = state(5_000);
    let changing_time = changing_frame_time(&mut changing, 5_000);
    println!("  5,000 resources, a row changing before each frame: {changing_time:>10.1?}  (goal: < 5 ms)");
    let mut busy = state(5_000);
    let (total, each) = burst(&mut busy, 5_000, 2_000, false);
    println!("a burst of 2,000 watch events at 5,000 resources:");
    println!("  rows rebuilt per event (the baseline):   {total:>8.2?} ({each:.1?} per event)");
    let mut busy = state(5_000);
    let (batched, each) = burst(&mut busy, 5_000, 2_000, true);
    println!(
        "  as the TUI applies them (one rebuild):   {batched:>8.2?} ({each:.1?} per event) before the last change can be drawn  (goal: < 1 s; {:.0}x faster)",
        total.as_secs_f64() / batched.as_secs_f64()
    );
}
