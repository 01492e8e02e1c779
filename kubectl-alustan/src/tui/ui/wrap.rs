//! Word wrapping for the text views, done before scrolling so the scroll position counts the
//! lines the user sees (ratatui's own wrapping happens after it).

use ratatui::style::Style;
use ratatui::text::{Line, Span};

/// Wraps `line` to `width` columns at spaces where possible. Continuation lines are indented
/// under the value column: a leading label span (`Name:` …) or the line's own indentation.
pub fn wrap(line: Line<'static>, width: usize) -> Vec<Line<'static>> {
    if line.width() <= width {
        return vec![line];
    }
    let indent = continuation_indent(&line).min(width / 2);
    let graphemes: Vec<(String, Style, usize)> = line
        .styled_graphemes(Style::default())
        .map(|g| (g.symbol.to_owned(), g.style, Span::raw(g.symbol).width()))
        .collect();
    let mut out = Vec::new();
    let mut start = 0;
    while start < graphemes.len() {
        let available = if out.is_empty() { width } else { width - indent };
        let (mut end, mut used) = (start, 0);
        while end < graphemes.len() && used + graphemes[end].2 <= available {
            used += graphemes[end].2;
            end += 1;
        }
        // Break at the last space after some text: not inside the leading indentation, and on
        // the first line not inside the label (a long value moves whole only if it must).
        let mut text_from = (start..end).find(|&i| graphemes[i].0 != " ").unwrap_or(end);
        if out.is_empty() {
            text_from = text_from.max(label_graphemes(&graphemes, indent));
        }
        if end < graphemes.len()
            && graphemes[end].0 != " "
            && let Some(space) = (text_from + 1..end).rev().find(|&i| graphemes[i].0 == " ")
        {
            end = space;
        }
        // A single grapheme wider than the line still has to go somewhere.
        end = end.max(start + 1);
        let mut spans = Vec::new();
        if !out.is_empty() {
            spans.push(Span::raw(" ".repeat(indent)));
        }
        for (symbol, style, _) in &graphemes[start..end] {
            match spans.last_mut() {
                Some(last) if last.style == *style => last.content.to_mut().push_str(symbol),
                _ => spans.push(Span::styled(symbol.clone(), *style)),
            }
        }
        out.push(Line::from(spans));
        start = end;
        while start < graphemes.len() && graphemes[start].0 == " " {
            start += 1;
        }
    }
    out
}

/// How many graphemes make up the first `columns` columns.
fn label_graphemes(graphemes: &[(String, Style, usize)], columns: usize) -> usize {
    let mut used = 0;
    graphemes
        .iter()
        .take_while(|(_, _, width)| {
            used += width;
            used <= columns
        })
        .count()
}

fn continuation_indent(line: &Line) -> usize {
    match line.spans.as_slice() {
        [label, _, ..] if label.width() <= 48 => label.width(),
        _ => line.spans.first().map_or(0, |s| s.content.len() - s.content.trim_start().len()) + 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(lines: &[Line]) -> Vec<String> {
        lines.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn short_lines_stay_whole() {
        assert_eq!(text(&wrap(Line::from("short"), 10)), ["short"]);
        assert_eq!(text(&wrap(Line::from("abc def ghi"), 7)), ["abc def", "  ghi"]);
        // A long value after a label is cut rather than leaving the label alone on its line.
        let line = Line::from(vec![Span::raw("arn  "), Span::raw("arn:aws:eks:eu-west-1")]);
        assert_eq!(text(&wrap(line, 16)), ["arn  arn:aws:eks", "     :eu-west-1"]);
    }

    #[test]
    fn wraps_at_spaces_under_the_label() {
        let line = Line::from(vec![Span::raw("Rejected: "), Span::raw("v1.1.0 (outside), latest (not semver)")]);
        assert_eq!(text(&wrap(line, 30)), ["Rejected: v1.1.0 (outside),", "          latest (not semver)"]);
    }

    #[test]
    fn long_words_are_cut_and_plain_lines_keep_their_indentation() {
        assert_eq!(text(&wrap(Line::from("  abcdefghijkl"), 8)), ["  abcdef", "    ghij", "    kl"]);
    }
}
