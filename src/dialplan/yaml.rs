//! A YAML node tree that remembers where every node came from.
//!
//! serde stops at the first error, but `voxgate check` must report every problem in every file at
//! once, each with its `line:col`. So dialplans are first parsed into this small tree (built from the
//! event stream of `granit_parser`, the YAML parser that serde-saphyr re-exports) and then validated
//! by hand in [`super::load`], collecting problems as it goes.
//!
//! Scalars keep their source text: `+15550100` stays a string and is never turned into the number
//! 15550100, `0049…` keeps its leading zeros, and `yes` is not a boolean (only `true`/`false` are,
//! as with serde-saphyr's `strict_booleans`). Aliases (`*name`) are expanded to a copy of the
//! anchored node. Tags are ignored. Duplicate keys are reported by the validator, not here.

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span};

/// A 1-based line and column (columns count characters), as printed in `file:line:col`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    /// Line, starting at 1; 0 means "the file as a whole".
    pub line: u32,
    /// Column in characters, starting at 1.
    pub col: u32,
}

impl Pos {
    /// The top of a file.
    pub const START: Pos = Pos { line: 1, col: 1 };
}

/// One YAML node with its position and the byte range of its source text.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// What the node holds.
    pub kind: Kind,
    /// Where the node starts.
    pub pos: Pos,
    /// Byte range of the node in the source, when the parser reported it.
    pub bytes: Option<(usize, usize)>,
}

/// The three YAML node kinds.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// A scalar with its text after escape processing; `plain` is false for quoted and block scalars.
    Scalar { text: String, plain: bool },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order (duplicates kept so the validator can report them).
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The scalar text, if this node is a scalar.
    pub fn scalar(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// True for `~`, `null`, or nothing at all after a key.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { text, plain: true }
            if text.is_empty() || text == "~" || text == "null" || text == "Null" || text == "NULL")
    }

    /// A word for the node kind, used in "expected a list, got a mapping" messages.
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            Kind::Scalar { .. } if self.is_null() => "nothing",
            Kind::Scalar { .. } => "a single value",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
}

/// A parsed file: its source (for positions inside scalars) and the root node.
pub(crate) struct Document<'s> {
    source: &'s str,
    /// The root node, `None` for an empty file.
    pub root: Option<Node>,
}

/// A YAML syntax error with its position.
#[derive(Debug)]
pub(crate) struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

impl<'s> Document<'s> {
    /// Parse one YAML document. A second document (`---`) is a syntax error: one plan per file.
    pub fn parse(source: &'s str) -> Result<Self, SyntaxError> {
        let mut b = Builder {
            events: Parser::new_from_str(source),
            anchors: Vec::new(),
        };
        let mut root = None;
        let mut docs = 0;
        loop {
            let (ev, span) = b.next()?;
            match ev {
                Ev::StreamEnd => break,
                Ev::DocStart => {
                    docs += 1;
                    if docs > 1 {
                        return Err(SyntaxError {
                            pos: pos_of(&span),
                            message: "a second YAML document ('---') in one file; put each \
                                      dialplan in its own file"
                                .into(),
                        });
                    }
                }
                Ev::Node(start) => root = Some(b.node(start, span)?),
                Ev::Other => {}
                Ev::End => {}
            }
        }
        Ok(Document { source, root })
    }

    /// The position of the first occurrence of `needle` inside `node`'s source text, or the
    /// node's own position. Used to point at one bad range inside `"08:00-12:00,13:00-25:00"`.
    pub fn pos_within(&self, node: &Node, needle: &str) -> Pos {
        let Some((start, end)) = node.bytes else {
            return node.pos;
        };
        let Some(slice) = self.source.get(start..end.min(self.source.len())) else {
            return node.pos;
        };
        let Some(found) = slice.find(needle) else {
            return node.pos;
        };
        self.pos_at_byte(start + found).unwrap_or(node.pos)
    }

    fn pos_at_byte(&self, byte: usize) -> Option<Pos> {
        let before = self.source.get(..byte)?;
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before.get(line_start..)?.chars().count() + 1;
        Some(Pos {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            col: u32::try_from(col).unwrap_or(u32::MAX),
        })
    }
}

/// The events the builder cares about.
enum Ev {
    StreamEnd,
    DocStart,
    Node(Start),
    End,
    Other,
}

/// The start of a node: a complete scalar, the opening of a collection, or an alias.
enum Start {
    Scalar(String, bool, usize),
    Seq(usize),
    Map(usize),
    Alias(usize),
}

struct Builder<'s> {
    events: Parser<'s, serde_saphyr::granit_parser::StrInput<'s>>,
    /// Anchored nodes by anchor id (ids are small and dense).
    anchors: Vec<Option<Node>>,
}

impl Builder<'_> {
    fn next(&mut self) -> Result<(Ev, Span), SyntaxError> {
        let Some(item) = self.events.next_event() else {
            return Ok((Ev::StreamEnd, Span::default()));
        };
        let (ev, span) = item.map_err(|e| SyntaxError {
            pos: Pos {
                line: to_u32(e.marker().line()),
                col: to_u32(e.marker().col() + 1),
            },
            message: format!("YAML syntax error: {}", e.info()),
        })?;
        let ev = match ev {
            Event::StreamEnd => Ev::StreamEnd,
            Event::DocumentStart(..) => Ev::DocStart,
            Event::Scalar(text, style, anchor, _tag) => {
                let plain = matches!(style, ScalarStyle::Plain);
                Ev::Node(Start::Scalar(text.into_owned(), plain, anchor))
            }
            Event::SequenceStart(_, anchor, _) => Ev::Node(Start::Seq(anchor)),
            Event::MappingStart(_, anchor, _) => Ev::Node(Start::Map(anchor)),
            Event::Alias(id) => Ev::Node(Start::Alias(id)),
            Event::SequenceEnd | Event::MappingEnd => Ev::End,
            _ => Ev::Other,
        };
        Ok((ev, span))
    }

    fn node(&mut self, start: Start, span: Span) -> Result<Node, SyntaxError> {
        let pos = pos_of(&span);
        let begin = span.start.byte_offset();
        let (kind, anchor) = match start {
            Start::Scalar(text, plain, anchor) => (Kind::Scalar { text, plain }, anchor),
            Start::Alias(id) => {
                let found = self.anchors.get(id).and_then(Option::as_ref);
                let Some(node) = found else {
                    return Err(SyntaxError {
                        pos,
                        message: "alias refers to an unknown anchor".into(),
                    });
                };
                let mut node = node.clone();
                node.pos = pos;
                return Ok(node);
            }
            Start::Seq(anchor) => {
                let mut items = Vec::new();
                loop {
                    match self.next()? {
                        (Ev::End, _) => break,
                        (Ev::Node(s), sp) => items.push(self.node(s, sp)?),
                        (Ev::StreamEnd, sp) => return Err(truncated(&sp)),
                        _ => {}
                    }
                }
                (Kind::Seq(items), anchor)
            }
            Start::Map(anchor) => {
                let mut entries = Vec::new();
                loop {
                    let key = match self.next()? {
                        (Ev::End, _) => break,
                        (Ev::Node(s), sp) => self.node(s, sp)?,
                        (Ev::StreamEnd, sp) => return Err(truncated(&sp)),
                        _ => continue,
                    };
                    let value = loop {
                        match self.next()? {
                            (Ev::Node(s), sp) => break self.node(s, sp)?,
                            (Ev::StreamEnd | Ev::End, sp) => return Err(truncated(&sp)),
                            _ => {}
                        }
                    };
                    entries.push((key, value));
                }
                (Kind::Map(entries), anchor)
            }
        };
        let end = span.end.byte_offset();
        let node = Node {
            kind,
            pos,
            bytes: begin.zip(end),
        };
        if anchor > 0 {
            if self.anchors.len() <= anchor {
                self.anchors.resize(anchor + 1, None);
            }
            self.anchors[anchor] = Some(node.clone());
        }
        Ok(node)
    }
}

fn truncated(span: &Span) -> SyntaxError {
    SyntaxError {
        pos: pos_of(span),
        message: "YAML syntax error: the file ends in the middle of a list or mapping".into(),
    }
}

fn pos_of(span: &Span) -> Pos {
    Pos {
        line: to_u32(span.start.line()),
        col: to_u32(span.start.col() + 1),
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_scalar_text_and_positions() {
        let doc = Document::parse("a: +15550100\nb:\n  - 0049\n  - \"x\"\nc:\n").expect("parses");
        let Some(Node {
            kind: Kind::Map(entries),
            ..
        }) = &doc.root
        else {
            panic!("root is a map");
        };
        assert_eq!(entries[0].1.scalar(), Some("+15550100"));
        assert_eq!(entries[0].1.pos, Pos { line: 1, col: 4 });
        let Kind::Seq(items) = &entries[1].1.kind else {
            panic!("b is a list")
        };
        assert_eq!(items[0].scalar(), Some("0049"));
        assert_eq!(items[1].pos, Pos { line: 4, col: 5 });
        assert!(entries[2].1.is_null());
    }

    #[test]
    fn positions_within_a_scalar() {
        let src = "open:\n  mon: \"08:00-12:00,13:00-25:00\"\n";
        let doc = Document::parse(src).expect("parses");
        let Some(Node {
            kind: Kind::Map(top),
            ..
        }) = &doc.root
        else {
            panic!()
        };
        let Kind::Map(open) = &top[0].1.kind else {
            panic!()
        };
        assert_eq!(
            doc.pos_within(&open[0].1, "13:00"),
            Pos { line: 2, col: 21 }
        );
    }

    #[test]
    fn syntax_error_has_a_position() {
        let err = Document::parse("a: [1, 2\nb: 3\n").err().expect("fails");
        assert!(err.pos.line >= 1, "{err:?}");
        assert!(err.message.starts_with("YAML syntax error"));
    }

    #[test]
    fn aliases_expand() {
        let doc = Document::parse("a: &x [1]\nb: *x\n").expect("parses");
        let Some(Node {
            kind: Kind::Map(e), ..
        }) = &doc.root
        else {
            panic!()
        };
        assert!(matches!(&e[1].1.kind, Kind::Seq(v) if v.len() == 1));
    }
}
