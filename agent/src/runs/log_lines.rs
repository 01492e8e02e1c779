//! Lines of a log stream in bounded memory. A line longer than the limit is cut there and the
//! rest of it skipped up to its newline, so a script printing megabytes without a newline
//! costs no more memory than the limit (a plain `lines()` would buffer the whole line).

use futures::{AsyncBufRead, AsyncBufReadExt as _};

/// One line (without its `\n`), invalid UTF-8 replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub text: String,
    /// The line was longer than the limit and is cut.
    pub cut: bool,
}

pub struct BoundedLines<R> {
    reader: R,
    max: usize,
    buffer: Vec<u8>,
    /// The longest line buffered so far, in bytes (what the bound is about).
    peak: usize,
}

impl<R: AsyncBufRead + Unpin> BoundedLines<R> {
    /// Lines of at most `max` bytes.
    pub fn new(reader: R, max: usize) -> Self {
        Self { reader, max, buffer: Vec::new(), peak: 0 }
    }

    /// The most bytes of one line held at once.
    pub fn peak(&self) -> usize {
        self.peak
    }

    /// The next line; `None` at the end of the stream.
    pub async fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        self.buffer.clear();
        let (mut cut, mut started) = (false, false);
        loop {
            let available = self.reader.fill_buf().await?;
            if available.is_empty() {
                return Ok(started.then(|| self.line(cut)));
            }
            started = true;
            let newline = available.iter().position(|&b| b == b'\n');
            let content = &available[..newline.unwrap_or(available.len())];
            let room = self.max.saturating_sub(self.buffer.len());
            if content.len() > room {
                cut = true;
            }
            self.buffer.extend_from_slice(&content[..content.len().min(room)]);
            self.peak = self.peak.max(self.buffer.len());
            let consumed = newline.map_or(available.len(), |i| i + 1);
            self.reader.consume_unpin(consumed);
            if newline.is_some() {
                return Ok(Some(self.line(cut)));
            }
        }
    }

    fn line(&self, cut: bool) -> Line {
        Line { text: String::from_utf8_lossy(&self.buffer).into_owned(), cut }
    }
}

#[cfg(test)]
mod tests {
    use futures::{AsyncReadExt as _, TryStreamExt as _};

    use super::*;

    #[tokio::test]
    async fn lines_split_on_newlines_and_keep_a_last_unterminated_one() {
        let input = futures::io::Cursor::new(b"one\n\ntwo\r\nthree".to_vec());
        let mut lines = BoundedLines::new(input, 100);
        let mut seen = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            seen.push((line.text, line.cut));
        }
        let expected = [("one", false), ("", false), ("two\r", false), ("three", false)];
        assert_eq!(seen, expected.map(|(t, c)| (t.to_owned(), c)));
    }

    #[tokio::test]
    async fn a_ten_mib_line_is_cut_and_never_buffered_whole() {
        // Produced lazily: neither the test nor the reader holds 10 MiB.
        let giant = futures::io::repeat(b'x').take(10 << 20);
        let input = futures::io::BufReader::new(giant.chain(futures::io::Cursor::new(b"\nafter\n".to_vec())));
        let mut lines = BoundedLines::new(input, 4096);
        let first = lines.next_line().await.unwrap().unwrap();
        assert!(first.cut && first.text.len() == 4096);
        assert_eq!(lines.next_line().await.unwrap().map(|l| l.text).as_deref(), Some("after"));
        assert_eq!(lines.next_line().await.unwrap(), None);
        assert_eq!(lines.peak(), 4096);
    }

    #[tokio::test]
    async fn ten_mib_of_log_lines_stream_through_the_collector_in_bounded_memory() {
        // 10 MiB in 1 KiB lines, then the outputs block, as a deploy with a chatty plan prints.
        let (begin, end) = crate::runs::jobs::markers("j");
        let pad = crate::runs::seal::Pad::from_bytes(vec![42; 4096]);
        let sealed = crate::runs::seal::seal(br#"{"vpc":{"value":"vpc-1"}}"#, &pad);
        let block = format!("{begin}\n{sealed}{end}\n");
        let chunks = (0..10 * 1024)
            .map(|i| format!("{i:06} {}\n", "y".repeat(1016)).into_bytes())
            .chain(std::iter::once(b"Apply complete!\n".to_vec()))
            .chain(std::iter::once(block.into_bytes()))
            .map(Ok::<_, std::io::Error>);
        let input = futures::stream::iter(chunks).into_async_read();
        let mut collector = crate::runs::outputs::collect_lines(input, "j").await.unwrap();
        collector.collected.unseal(Ok(pad));
        let collected = &collector.collected;
        assert_eq!(collected.outputs.plain["vpc"], "vpc-1");
        assert_eq!(collected.tail.last().map(String::as_str), Some("Apply complete!"));
        assert!(collected.tail.len() <= 20 && collected.tail.iter().all(|l| l.len() <= 500));
        assert!(collector.peak_line_bytes <= 1024, "a line buffer held {} bytes", collector.peak_line_bytes);
        assert_eq!(collector.lines, 10 * 1024 + 4 + 1);
    }
}
