//! kubectl's `-o jsonpath=TEMPLATE` and `-o custom-columns=HEADER:PATH,…`: text with `{…}`
//! blocks holding a JSONPath (`{.metadata.name}`), a quoted literal (`{"\n"}`) or
//! `{range PATH}…{end}`, evaluated as kubectl does (paths are relative to the object, or to the
//! current item inside a range; several results are joined with a space).

use jsonpath_rust::JsonPath as _;
use serde_json::Value;

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Path(String),
    Range(String, Vec<Piece>),
}

/// A template that parses; the error says what is wrong in kubectl's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

impl Template {
    pub fn parse(text: &str) -> Result<Self, String> {
        let blocks = blocks(text)?;
        let mut at = 0;
        let (pieces, ended) = nest(&blocks, &mut at)?;
        if ended {
            return Err("`{end}` without a `{range …}`".to_owned());
        }
        Ok(Template(pieces))
    }

    /// The template filled from `value`.
    pub fn render(&self, value: &Value) -> Result<String, String> {
        let mut out = String::new();
        render(&self.0, value, &mut out)?;
        Ok(out)
    }
}

/// Raw blocks: literal text, or the inside of `{…}` (kept with a marker).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Block {
    Text(String),
    Code(String),
}

fn blocks(text: &str) -> Result<Vec<Block>, String> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            blocks.push(Block::Text(rest[..open].to_owned()));
        }
        let inner = &rest[open + 1..];
        let close = closing(inner).ok_or_else(|| format!("unclosed `{{` in {text:?}"))?;
        blocks.push(Block::Code(inner[..close].trim().to_owned()));
        rest = &inner[close + 1..];
    }
    if !rest.is_empty() {
        blocks.push(Block::Text(rest.to_owned()));
    }
    Ok(blocks)
}

/// The `}` closing a block, skipping those inside quotes.
fn closing(inner: &str) -> Option<usize> {
    let mut quote = None;
    for (i, ch) in inner.char_indices() {
        match (quote, ch) {
            (None, '"' | '\'') => quote = Some(ch),
            (Some(q), c) if c == q => quote = None,
            (None, '}') => return Some(i),
            _ => {}
        }
    }
    None
}

/// Pieces up to the matching `{end}` (`true`) or the end of the template (`false`).
fn nest(blocks: &[Block], at: &mut usize) -> Result<(Vec<Piece>, bool), String> {
    let mut pieces = Vec::new();
    while let Some(block) = blocks.get(*at) {
        *at += 1;
        match block {
            Block::Text(text) => pieces.push(Piece::Text(text.clone())),
            Block::Code(code) if code == "end" => return Ok((pieces, true)),
            Block::Code(code) => {
                if let Some(path) = code.strip_prefix("range ") {
                    let (inner, ended) = nest(blocks, at)?;
                    if !ended {
                        return Err(format!("`{{range {path}}}` has no `{{end}}`"));
                    }
                    pieces.push(Piece::Range(path.trim().to_owned(), inner));
                } else if let Some(literal) = quoted(code) {
                    pieces.push(Piece::Text(literal));
                } else {
                    pieces.push(Piece::Path(code.clone()));
                }
            }
        }
    }
    Ok((pieces, false))
}

/// `"…"` with kubectl's escapes (`\n`, `\t`), or `None` when `code` is not a literal.
fn quoted(code: &str) -> Option<String> {
    let inner = code.strip_prefix('"').and_then(|c| c.strip_suffix('"'))?;
    Some(inner.replace("\\n", "\n").replace("\\t", "\t").replace("\\\"", "\""))
}

fn render(pieces: &[Piece], value: &Value, out: &mut String) -> Result<(), String> {
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Path(path) => {
                let found: Vec<String> = query(value, path)?.into_iter().map(cell).collect();
                out.push_str(&found.join(" "));
            }
            Piece::Range(path, inner) => {
                for item in query(value, path)? {
                    render(inner, item, out)?;
                }
            }
        }
    }
    Ok(())
}

/// The values at kubectl-style `path` (`.a.b`, `{.a[*].b}`, `$.a`) under `value`.
pub fn query<'a>(value: &'a Value, path: &str) -> Result<Vec<&'a Value>, String> {
    let path = path.trim();
    let path = path.strip_prefix('{').and_then(|p| p.strip_suffix('}')).unwrap_or(path).trim();
    let absolute = if path.starts_with('$') {
        path.to_owned()
    } else if path.starts_with('.') || path.starts_with('[') {
        format!("${path}")
    } else {
        format!("$.{path}")
    };
    let absolute = if absolute == "$." { "$".to_owned() } else { absolute };
    value.query(&absolute).map_err(|e| format!("bad JSONPath {path:?}: {e}"))
}

/// A value as kubectl prints it in a template: strings bare, the rest as JSON.
pub fn cell(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `custom-columns=NAME:.metadata.name,VERSION:.status.applied.tag`: the headers and paths.
pub fn columns(spec: &str) -> Result<Vec<(String, String)>, String> {
    spec.split(',')
        .map(|column| match column.split_once(':') {
            Some((header, path)) if !header.is_empty() && !path.is_empty() => Ok((header.to_owned(), path.to_owned())),
            _ => Err(format!("custom-columns wants HEADER:PATH pairs joined with commas, got {column:?}")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list() -> Value {
        json!({"kind": "List", "items": [
            {"metadata": {"name": "a", "labels": {"team": "x"}}, "status": {"applied": {"tag": "1.0.0"}}},
            {"metadata": {"name": "b"}, "status": {}},
        ]})
    }

    #[test]
    fn paths_literals_and_ranges_as_kubectl() {
        let t = Template::parse(r#"{range .items[*]}{.metadata.name}{"\t"}{.status.applied.tag}{"\n"}{end}"#).unwrap();
        assert_eq!(t.render(&list()).unwrap(), "a\t1.0.0\nb\t\n");
        let t = Template::parse("names: {.items[*].metadata.name}").unwrap();
        assert_eq!(t.render(&list()).unwrap(), "names: a b");
        assert_eq!(
            Template::parse("{.metadata.name}").unwrap().render(&json!({"metadata": {"name": "n"}})).unwrap(),
            "n"
        );
    }

    #[test]
    fn bad_templates_are_said() {
        assert!(Template::parse("{.a").unwrap_err().contains("unclosed"));
        assert!(Template::parse("{range .items[*]}{.a}").unwrap_err().contains("no `{end}`"));
        assert!(Template::parse("{end}").unwrap_err().contains("without a `{range"));
    }

    #[test]
    fn custom_columns_are_header_path_pairs() {
        assert_eq!(
            columns("NAME:.metadata.name,TAG:.status.applied.tag").unwrap(),
            [("NAME".to_owned(), ".metadata.name".to_owned()), ("TAG".to_owned(), ".status.applied.tag".to_owned())]
        );
        assert!(columns("NAME").is_err());
    }
}
