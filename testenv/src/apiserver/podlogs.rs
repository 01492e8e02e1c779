//! Pod logs: an in-memory log per (namespace, pod, container) that a kubelet fills and the
//! `pods/{name}/log` subresource reads (with `follow`, `tailLines`, `container`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

type Key = (String, String, String);

#[derive(Debug, Default, Clone)]
struct Buf {
    data: Vec<u8>,
    finished: bool,
}

/// The log source shared by the server and whoever runs containers.
#[derive(Debug, Clone)]
pub struct PodLogs {
    bufs: Arc<Mutex<HashMap<Key, Buf>>>,
    changed: Arc<watch::Sender<u64>>,
}

impl Default for PodLogs {
    fn default() -> Self {
        Self { bufs: Arc::default(), changed: Arc::new(watch::channel(0).0) }
    }
}

fn key(ns: &str, pod: &str, container: &str) -> Key {
    (ns.to_owned(), pod.to_owned(), container.to_owned())
}

impl PodLogs {
    /// Appends output of a container (creating its log when new).
    pub fn append(&self, namespace: &str, pod: &str, container: &str, bytes: &[u8]) {
        {
            let mut bufs = self.bufs.lock().unwrap_or_else(PoisonError::into_inner);
            bufs.entry(key(namespace, pod, container)).or_default().data.extend_from_slice(bytes);
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// Marks a container's log complete (followers stop).
    pub fn finish(&self, namespace: &str, pod: &str, container: &str) {
        {
            let mut bufs = self.bufs.lock().unwrap_or_else(PoisonError::into_inner);
            bufs.entry(key(namespace, pod, container)).or_default().finished = true;
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// Forgets a pod's logs.
    pub fn remove_pod(&self, namespace: &str, pod: &str) {
        self.bufs.lock().unwrap_or_else(PoisonError::into_inner).retain(|(n, p, _), _| !(n == namespace && p == pod));
        self.changed.send_modify(|n| *n += 1);
    }

    /// The bytes from `offset` and whether the log is finished; None when it never started.
    pub fn read_from(&self, namespace: &str, pod: &str, container: &str, offset: usize) -> Option<(Vec<u8>, bool)> {
        let bufs = self.bufs.lock().unwrap_or_else(PoisonError::into_inner);
        bufs.get(&key(namespace, pod, container))
            .map(|b| (b.data.get(offset..).map(<[u8]>::to_vec).unwrap_or_default(), b.finished))
    }

    /// Wakes on any change.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// The last `n` lines of a log.
pub fn tail_lines(data: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &data[i + 1..];
            }
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails() {
        assert_eq!(tail_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail_lines(b"a\nb\nc", 1), b"c");
        assert_eq!(tail_lines(b"a\n", 5), b"a\n");
    }
}
