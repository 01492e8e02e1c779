//! `kubectl_complete-alustan`: what kubectl (1.26+) runs to complete `kubectl alustan …`.

use kubectl_alustan::completion;

fn main() {
    let words: Vec<String> = std::env::args().skip(1).collect();
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        kubectl_alustan::outln!(":4");
        return;
    };
    kubectl_alustan::out!("{}", runtime.block_on(completion::complete(&words)));
}
