//! The one XML reader every XML dialect parses through: a small element tree built with
//! quick-xml, refusing what a source must never be able to make the gateway do.
//!
//! A `<!DOCTYPE` is refused as soon as it is seen, before anything after it is read, so no
//! external entity, no parameter entity and no entity expansion ("billion laughs") can ever be
//! reached; an entity reference other than the five XML predefines and character references is
//! refused too. quick-xml itself never fetches anything, so refusing the DOCTYPE is defence in
//! depth as well as a clear error. Depth is capped, and the input is already capped in size by the
//! adapter's body limit, so memory stays bounded. Nothing of the document reaches an error.

use quick_xml::XmlVersion;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};

/// Deepest element nesting accepted.
pub const MAX_DEPTH: usize = 32;
/// Most elements one document may hold. A tree costs far more memory than its text (an empty
/// `<a/>` is four bytes of input and a hundred or so of tree), so the count is capped as well
/// as the body: a record of ten thousand entries fits with room to spare.
pub const MAX_ELEMENTS: usize = 200_000;

/// Why a document was refused. Carries no content of the document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// The document declares a DOCTYPE (and so could declare entities).
    #[error("the document declares a DOCTYPE, which is never read")]
    DocType,
    /// An entity reference that is not one of XML's five predefined entities.
    #[error("the document refers to an entity that is not predefined")]
    Entity,
    /// Elements nested deeper than [`MAX_DEPTH`].
    #[error("the document nests elements deeper than {MAX_DEPTH}")]
    TooDeep,
    /// More than [`MAX_ELEMENTS`] elements.
    #[error("the document holds more than {MAX_ELEMENTS} elements")]
    TooMany,
    /// Not well-formed XML (or not UTF-8).
    #[error("the document is not well-formed XML")]
    Malformed,
    /// No root element.
    #[error("the document has no root element")]
    Empty,
}

/// One element: its local name, attributes (local names, values unescaped), child elements and
/// its own text (concatenated, trimmed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// Local name (namespace prefix dropped).
    pub name: String,
    /// Attributes in document order.
    pub attributes: Vec<(String, String)>,
    /// Child elements in document order.
    pub children: Vec<Element>,
    /// Text directly inside the element.
    pub text: String,
}

impl Element {
    /// The attribute's value, if present.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The first child of that name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child of that name.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The trimmed text of the first child of that name, if it has any.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim()).filter(|t| !t.is_empty())
    }
}

fn local(name: &str) -> Result<String, XmlError> {
    Ok(name.rsplit(':').next().unwrap_or(name).to_owned())
}

fn element(start: &BytesStart<'_>) -> Result<Element, XmlError> {
    let mut attributes = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|_| XmlError::Malformed)?;
        let key = local(attr.key.as_ref())?;
        if key == "xmlns" || attr.key.as_ref().starts_with("xmlns:") {
            continue;
        }
        let value = attr.normalized_value(XmlVersion::Implicit1_0).map_err(|_| XmlError::Entity)?;
        attributes.push((key, value.into_owned()));
    }
    Ok(Element { name: local(start.name().as_ref())?, attributes, children: Vec::new(), text: String::new() })
}

/// Parses `bytes` (UTF-8) into its root element.
pub fn parse(bytes: &[u8]) -> Result<Element, XmlError> {
    let text = std::str::from_utf8(bytes).map_err(|_| XmlError::Malformed)?;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    let mut elements = 0usize;
    loop {
        let event = reader.read_event().map_err(|_| XmlError::Malformed)?;
        if matches!(event, Event::Start(_) | Event::Empty(_)) {
            elements += 1;
            if elements > MAX_ELEMENTS {
                return Err(XmlError::TooMany);
            }
        }
        match event {
            Event::DocType(_) => return Err(XmlError::DocType),
            Event::Start(start) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                if root.is_some() {
                    return Err(XmlError::Malformed);
                }
                stack.push(element(&start)?);
            }
            Event::Empty(start) => {
                let e = element(&start)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(e),
                    None if root.is_none() => root = Some(e),
                    None => return Err(XmlError::Malformed),
                }
            }
            Event::End(_) => {
                let mut done = stack.pop().ok_or(XmlError::Malformed)?;
                done.text = done.text.trim().to_owned();
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => root = Some(done),
                }
            }
            Event::Text(t) => {
                if let Some(e) = stack.last_mut() {
                    e.text.push_str(&t.xml_content(XmlVersion::Implicit1_0));
                }
            }
            Event::CData(t) => {
                if let Some(e) = stack.last_mut() {
                    e.text.push_str(&t);
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|_| XmlError::Malformed)? {
                    Some(c) => c.to_string(),
                    None => resolve_predefined_entity(&r).ok_or(XmlError::Entity)?.to_owned(),
                };
                if let Some(e) = stack.last_mut() {
                    e.text.push_str(&resolved);
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Malformed);
    }
    root.ok_or(XmlError::Empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_attributes_and_text_are_read_with_predefined_entities() {
        let doc = br#"<?xml version="1.0"?><r:Root xmlns:r="urn:x" a="1 &amp; 2"><Item id="i1">fish &amp; chips &#x41;<![CDATA[<b>]]></Item><Empty/></r:Root>"#;
        let root = parse(doc).unwrap();
        assert_eq!(root.name, "Root");
        assert_eq!(root.attr("a"), Some("1 & 2"));
        assert_eq!(root.child("Item").unwrap().text, "fish & chips A<b>");
        assert_eq!(root.child("Item").unwrap().attr("id"), Some("i1"));
        assert!(root.child("Empty").is_some());
    }

    #[test]
    fn a_doctype_is_refused_before_anything_after_it_is_read() {
        let xxe = br#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "http://127.0.0.1:9/secret">]><r>&x;</r>"#;
        assert_eq!(parse(xxe), Err(XmlError::DocType));
        let laughs =
            br#"<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><lolz>&lol2;</lolz>"#;
        assert_eq!(parse(laughs), Err(XmlError::DocType));
    }

    #[test]
    fn undeclared_entities_depth_and_broken_documents_are_refused() {
        assert_eq!(parse(b"<r>&x;</r>"), Err(XmlError::Entity));
        assert_eq!(parse(b"<r a='&x;'/>"), Err(XmlError::Entity));
        let deep = format!("{}{}", "<a>".repeat(MAX_DEPTH + 1), "</a>".repeat(MAX_DEPTH + 1));
        assert_eq!(parse(deep.as_bytes()), Err(XmlError::TooDeep));
        let wide = format!("<r>{}</r>", "<a/>".repeat(MAX_ELEMENTS));
        assert_eq!(parse(wide.as_bytes()), Err(XmlError::TooMany));
        assert_eq!(parse(b"<r><a></r>"), Err(XmlError::Malformed));
        assert_eq!(parse(b"<r>"), Err(XmlError::Malformed));
        assert_eq!(parse(b"<r/><s/>"), Err(XmlError::Malformed));
        assert_eq!(parse(b""), Err(XmlError::Empty));
        assert_eq!(parse(&[0xff, 0xfe]), Err(XmlError::Malformed));
    }
}
