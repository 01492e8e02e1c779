//! Frame render time of the list for 5,000 resources at 200×50, against 50 resources.
//! Only visible rows are built, so the ratio should stay near 1. Prints figures; asserts nothing.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use kubectl_alustan::tui::action::Action;
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
}
