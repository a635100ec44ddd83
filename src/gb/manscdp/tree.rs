//! Bounded XML reading for MANSCDP bodies: the pre-parse clean-up that real
//! devices need (bare `&`, DTD refusal) and a small element tree built from
//! quick-xml events.
//!
//! A tree rather than serde: quick-xml's `serialize` feature is off, and the
//! lookups MANSCDP needs (case-insensitive names, Info fields read at two
//! levels, junk numbers read as "absent") are plain tree walks anyway.

use std::borrow::Cow;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::ManscdpError;

/// Deepest element nesting accepted. A Catalog item's Info field sits at
/// depth 5 (`Response/DeviceList/Item/Info/PTZType`); 16 leaves room for
/// vendor extensions while stopping nesting bombs.
pub const MAX_DEPTH: usize = 16;
/// Most elements accepted in one body. The standard caps a MESSAGE at 10,000
/// records (gb28181.md §3 "Multi-packet"); a 1 MiB body of realistic items
/// holds far fewer than this many elements. It bounds memory, not semantics.
pub const MAX_ELEMENTS: usize = 100_000;
/// Longest text (or attribute value) kept, in bytes; longer text is cut at a
/// character boundary. No MANSCDP field is anywhere near this long.
pub const MAX_TEXT: usize = 1024;
/// Most attributes kept per element (MANSCDP uses one: `Num`).
pub const MAX_ATTRIBUTES: usize = 16;
/// Raw text gathered per element before trimming; beyond this it is dropped.
const MAX_TEXT_GATHER: usize = 2 * MAX_TEXT;

/// One XML element: name (namespace prefix dropped, case kept), attributes,
/// its own text (trimmed, entity references resolved, CDATA included) and
/// child elements in document order.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Element {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// Whether this element is called `name`, ignoring ASCII case
    /// (devices and OCR'd 2022 texts vary: `CATALOG`, `catalog`; gb28181.md §3).
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// The first child called `name` (ASCII case ignored).
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(name))
    }

    /// Every child called `name` (ASCII case ignored), in document order.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.is(name))
    }

    /// The text of the first child called `name`, if it exists and is not empty.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name)
            .map(|c| c.text.as_str())
            .filter(|t| !t.is_empty())
    }

    /// The value of attribute `name` (ASCII case ignored).
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Refuses any document type declaration or entity declaration, anywhere in
/// the body (even in comments or CDATA; no MANSCDP body has a reason to carry
/// one). MANSCDP has no DTD, and entity expansion is the "billion laughs" XML
/// bomb.
pub(super) fn reject_dtd(xml: &str) -> Result<(), ManscdpError> {
    for (i, _) in xml.match_indices("<!") {
        let rest = &xml.as_bytes()[i + 2..];
        for keyword in ["DOCTYPE", "ENTITY"] {
            if rest.len() >= keyword.len()
                && rest[..keyword.len()].eq_ignore_ascii_case(keyword.as_bytes())
            {
                return Err(ManscdpError::Dtd { keyword, offset: i });
            }
        }
    }
    Ok(())
}

/// Escapes every `&` that does not start one of the five predefined entity
/// references or a valid character reference (`&#NN;`, `&#xHH;`). Hikvision
/// sends unescaped `&` in text (gb28181.md §2, WVP SIPRequestProcessorParent);
/// a strict parser would reject the whole body. CDATA sections, comments and
/// processing instructions are copied untouched. Borrows when nothing changes.
pub(super) fn escape_bare_ampersands(xml: &str) -> Cow<'_, str> {
    let bytes = xml.as_bytes();
    let mut out: Option<String> = None;
    // `copied` is how much of `xml` has been copied into `out`.
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'<' => {
                let skip_to = |from: usize, end: &str| {
                    xml[from..]
                        .find(end)
                        .map_or(bytes.len(), |p| from + p + end.len())
                };
                if xml[i..].starts_with("<![CDATA[") {
                    i = skip_to(i + 9, "]]>");
                } else if xml[i..].starts_with("<!--") {
                    i = skip_to(i + 4, "-->");
                } else if xml[i..].starts_with("<?") {
                    i = skip_to(i + 2, "?>");
                } else {
                    i += 1;
                }
            }
            b'&' => {
                if !is_valid_reference(&xml[i + 1..]) {
                    let o = out.get_or_insert_with(|| String::with_capacity(xml.len() + 16));
                    o.push_str(&xml[copied..i]);
                    o.push_str("&amp;");
                    copied = i + 1;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    match out {
        None => Cow::Borrowed(xml),
        Some(mut o) => {
            o.push_str(&xml[copied..]);
            Cow::Owned(o)
        }
    }
}

/// Whether `rest` (the text after an `&`) starts with a reference XML 1.0
/// resolves: `amp;` `lt;` `gt;` `quot;` `apos;`, `#digits;` or `#xhex;`
/// naming a legal character (XML 1.0 §2.2 Char, §4.1 WFC: Legal Character).
fn is_valid_reference(rest: &str) -> bool {
    // The longest valid reference body is `#x10FFFF` or `#1114111` plus
    // optional leading zeros; 12 bytes is generous.
    let Some(end) = rest.bytes().take(12).position(|b| b == b';') else {
        return false;
    };
    let name = &rest[..end];
    match name {
        "amp" | "lt" | "gt" | "quot" | "apos" => true,
        _ => {
            let code = if let Some(hex) = name.strip_prefix("#x") {
                if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return false;
                }
                u32::from_str_radix(hex, 16).ok()
            } else if let Some(dec) = name.strip_prefix('#') {
                if dec.is_empty() || !dec.bytes().all(|b| b.is_ascii_digit()) {
                    return false;
                }
                dec.parse::<u32>().ok()
            } else {
                None
            };
            code.is_some_and(is_xml_char)
        }
    }
}

/// XML 1.0 §2.2 `Char`.
fn is_xml_char(c: u32) -> bool {
    matches!(c, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

/// Reads `xml` into a tree, enforcing [`MAX_DEPTH`], [`MAX_ELEMENTS`],
/// [`MAX_TEXT`] and [`MAX_ATTRIBUTES`]. Reading stops when the root element
/// closes, so trailing junk (NUL padding, a second document) is ignored.
/// Expects input that went through [`reject_dtd`] and [`escape_bare_ampersands`].
pub(super) fn build(xml: &str) -> Result<Element, ManscdpError> {
    let mut reader = Reader::from_str(xml);
    {
        let config = reader.config_mut();
        config.check_end_names = true;
        config.expand_empty_elements = false;
        config.trim_markup_names_in_closing_tags = true;
    }
    let mut stack: Vec<Element> = Vec::new();
    let mut elements = 0usize;
    loop {
        let event = reader.read_event().map_err(|e| ManscdpError::Xml {
            offset: reader.error_position(),
            message: e.to_string(),
        })?;
        match event {
            Event::Start(start) => open(&mut stack, &start, &mut elements)?,
            Event::Empty(start) => {
                open(&mut stack, &start, &mut elements)?;
                if let Some(root) = close(&mut stack) {
                    return Ok(root);
                }
            }
            Event::End(_) => {
                // check_end_names guarantees the name matches the open element.
                if let Some(root) = close(&mut stack) {
                    return Ok(root);
                }
            }
            Event::Text(text) => {
                if let Some(top) = stack.last_mut() {
                    push_text(top, &String::from_utf8_lossy(&text));
                }
            }
            Event::CData(cdata) => {
                if let Some(top) = stack.last_mut() {
                    push_text(top, &String::from_utf8_lossy(&cdata));
                }
            }
            Event::GeneralRef(reference) => {
                if let Some(top) = stack.last_mut() {
                    let name = String::from_utf8_lossy(&reference);
                    match resolve_reference(&name) {
                        Some(c) => push_text(top, c.encode_utf8(&mut [0; 4])),
                        // Unreachable after escape_bare_ampersands; keep it literal.
                        None => push_text(top, &format!("&{name};")),
                    }
                }
            }
            Event::DocType(_) => {
                return Err(ManscdpError::Dtd {
                    keyword: "DOCTYPE",
                    offset: usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX),
                });
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => {
                return Err(match stack.last() {
                    Some(open) => ManscdpError::Truncated {
                        element: clip(&open.name, 64),
                    },
                    None => ManscdpError::NoRoot,
                });
            }
        }
    }
}

/// Pushes a new element for `start`, checking depth and element count.
fn open(
    stack: &mut Vec<Element>,
    start: &BytesStart<'_>,
    elements: &mut usize,
) -> Result<(), ManscdpError> {
    let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
    if stack.len() >= MAX_DEPTH {
        return Err(ManscdpError::TooDeep {
            max: MAX_DEPTH,
            element: clip(&name, 64),
        });
    }
    *elements += 1;
    if *elements > MAX_ELEMENTS {
        return Err(ManscdpError::TooManyElements { max: MAX_ELEMENTS });
    }
    let mut attributes = Vec::new();
    for attr in start
        .attributes()
        .with_checks(false)
        .flatten()
        .take(MAX_ATTRIBUTES)
    {
        let key = String::from_utf8_lossy(attr.key.local_name().as_ref()).into_owned();
        let value = match attr.unescape_value() {
            Ok(v) => v.into_owned(),
            Err(_) => String::from_utf8_lossy(&attr.value).into_owned(),
        };
        attributes.push((key, clip(value.trim(), MAX_TEXT)));
    }
    stack.push(Element {
        name,
        attributes,
        text: String::new(),
        children: Vec::new(),
    });
    Ok(())
}

/// Pops the top element, finishing its text, and attaches it to its parent.
/// Returns the root when the root itself closes.
fn close(stack: &mut Vec<Element>) -> Option<Element> {
    let mut done = stack.pop()?;
    let trimmed = done.text.trim();
    if trimmed.len() > MAX_TEXT {
        tracing::debug!(
            element = %clip(&done.name, 64),
            len = trimmed.len(),
            "MANSCDP text over {MAX_TEXT} bytes truncated"
        );
    }
    done.text = clip(trimmed, MAX_TEXT);
    match stack.last_mut() {
        Some(parent) => {
            parent.children.push(done);
            None
        }
        None => Some(done),
    }
}

/// Appends text to an element, dropping whatever goes past the gather bound.
fn push_text(element: &mut Element, text: &str) {
    let room = MAX_TEXT_GATHER.saturating_sub(element.text.len());
    if room == 0 {
        return;
    }
    element.text.push_str(&clip(text, room));
}

/// `&name;` to a character: the five predefined entities or a character
/// reference naming a legal character.
fn resolve_reference(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let code = if let Some(hex) = name.strip_prefix("#x") {
                u32::from_str_radix(hex, 16).ok()?
            } else {
                name.strip_prefix('#')?.parse().ok()?
            };
            if is_xml_char(code) {
                char::from_u32(code)
            } else {
                None
            }
        }
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
pub(super) fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
