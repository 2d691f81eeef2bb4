//! R4 validation by HL7's FHIR R4 JSON schema, walked by hand over a `serde_json::Value`.
//!
//! The structure (every resource and complex type, its properties, their types, arrays, enums,
//! `_x` primitive-extension siblings and required elements) is derived from the schema by
//! `profiles/scripts/derive_r4_structure.py` into `profiles/data/r4-structure.txt`, embedded here
//! and parsed once. The primitive patterns are hand-coded matchers below; a test checks that the
//! patterns in the data file are still the ones they implement.
//!
//! The walker follows the schema's semantics (unknown properties rejected, JSON types, patterns,
//! arrays, enums, `required`), with these readings where the schema alone is looser than R4 and
//! than the checkers before and beside it (fhirbolt strict, which this replaced; PyPI
//! `fhirclient` strict in CI):
//! - a complex-typed value must be a JSON object (the schema's complex definitions omit
//!   `"type": "object"`, so a JSON Schema validator lets a string or an array through there);
//!   `null` is allowed only as an item of a `_x` sibling array, FHIR's placeholder;
//! - `xhtml` (`Narrative.div`) must be a string (the schema gives it no type at all);
//! - the numeric patterns (integer, positiveInt, unsignedInt, decimal) are applied to the number
//!   as written (JSON Schema applies `pattern` to strings only); unsignedInt's pattern is written
//!   `^[0]|([1-9][0-9]*)$`, whose alternation binds looser than its anchors, and is read as
//!   meant; the three integer kinds are 32-bit, as R4 defines them;
//! - `\s` is read as the union of ECMA-262's whitespace (the dialect JSON Schema names) and
//!   Python's (what CI's checker runs), and `$` as the end of the string, so a value that passes
//!   here passes both readings;
//! - arrays must not be empty (R4's JSON rules; the schema has no `minItems` anywhere);
//! - from HL7's StructureDefinitions, which the generator also reads: primitives R4 requires
//!   (`Observation.status`, `Extension.url`; the value or its `_x` sibling must be present), and
//!   choice types (`value[x]`): at most one variant, at least one where R4 requires the element.
//!
//! The schema is the 4.0.0 build; the generator adds `4.0.1` to the `fhirVersion` enums, as CI's
//! fhir-check does.
//!
//! Errors name where (a FHIRPath-like path) and what, never the offending value.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use serde_json::{Map, Value};

const STRUCTURE_TEXT: &str = include_str!("../data/r4-structure.txt");

/// How deep objects may nest before the walker gives up (serde_json's own parse limit is 128).
const MAX_DEPTH: usize = 128;

/// Why a resource does not validate: where (a FHIRPath-like path such as
/// `Bundle.entry[2].resource(Observation).status`) and what. It never quotes a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    path: String,
    problem: Problem,
}

impl SchemaError {
    /// The path of the offending element, starting with the top-level resource type.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong there.
    pub fn problem(&self) -> Problem {
        self.problem
    }
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.problem)
    }
}

impl std::error::Error for SchemaError {}

/// What is wrong with an element. None of these carries the element's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// The document, or a nested resource, is not a JSON object.
    NotAResource,
    /// `resourceType` is missing or not a string.
    MissingResourceType,
    /// `resourceType` names no R4 resource.
    UnknownResourceType,
    /// The schema does not define this property here.
    UnknownProperty,
    /// A required element is absent.
    MissingRequired,
    /// R4 has an array here.
    ExpectedArray,
    /// R4 has a single value here.
    UnexpectedArray,
    /// A complex-typed element is not a JSON object.
    ExpectedObject,
    /// A primitive has the wrong JSON type.
    ExpectedJsonType(&'static str),
    /// A primitive does not match its type's pattern.
    BadFormat(&'static str),
    /// A code outside the required value set.
    NotAllowedCode,
    /// An array with no items (R4's JSON rules; the schema has no `minItems`).
    EmptyArray,
    /// More than one variant of a choice type (`valueString` and `valueBoolean`).
    SeveralChoices,
    /// A constant (a resource's own `resourceType`) does not match.
    WrongConstant,
    /// Deeper nesting than the walker follows.
    TooDeep,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NotAResource => f.write_str("not a JSON object"),
            Problem::MissingResourceType => f.write_str("no resourceType"),
            Problem::UnknownResourceType => f.write_str("not an R4 resource type"),
            Problem::UnknownProperty => f.write_str("unknown property"),
            Problem::MissingRequired => f.write_str("required element missing"),
            Problem::ExpectedArray => f.write_str("expected an array"),
            Problem::UnexpectedArray => f.write_str("expected a single value, not an array"),
            Problem::ExpectedObject => f.write_str("expected a JSON object"),
            Problem::ExpectedJsonType(t) => write!(f, "expected a JSON {t}"),
            Problem::BadFormat(kind) => write!(f, "not a valid {kind}"),
            Problem::EmptyArray => f.write_str("an array must not be empty"),
            Problem::SeveralChoices => f.write_str("more than one type given"),
            Problem::NotAllowedCode => f.write_str("not one of the allowed codes"),
            Problem::WrongConstant => f.write_str("does not match the resource type"),
            Problem::TooDeep => f.write_str("nested too deeply"),
        }
    }
}

/// Checks that `value` is one R4 resource (any type) valid by HL7's R4 JSON schema, nested
/// resources included.
pub fn check_resource(value: &Value) -> Result<(), SchemaError> {
    let structure = structure();
    structure.resource(value, 0).map_err(Fault::render)
}

/// Whether `name` is an R4 resource type.
pub fn is_resource_type(name: &str) -> bool {
    structure().resources.contains_key(name)
}

/// The R4 resource type called `name`, as a `'static` name.
pub fn resource_type_named(name: &str) -> Option<&'static str> {
    structure().resources.get_key_value(name).map(|(k, _)| *k)
}

/// Checks `value` against one named resource or complex type (`"Patient"`, `"HumanName"`).
/// Returns `None` when the schema has no such type.
pub fn check_as(type_name: &str, value: &Value) -> Option<Result<(), SchemaError>> {
    let structure = structure();
    let ty = *structure.by_name.get(type_name)?;
    let name = structure.types[usize::from(ty)].name;
    Some(structure.complex(ty, value, 0).map_err(|fault| fault.at(Seg::Type(name)).render()))
}

// ---------------------------------------------------------------------------------------------
// The derived structure.

fn structure() -> &'static Structure {
    static STRUCTURE: OnceLock<Structure> = OnceLock::new();
    STRUCTURE.get_or_init(|| match Structure::parse(STRUCTURE_TEXT) {
        Ok(s) => s,
        // The text is embedded at build time and checked by the tests, so this is a build defect.
        Err(line) => panic!("profiles/data/r4-structure.txt is malformed at line {line}"),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Base64Binary,
    Base64Inline,
    Boolean,
    Canonical,
    Code,
    Date,
    DateTime,
    Decimal,
    Id,
    Instant,
    Integer,
    Markdown,
    Oid,
    PositiveInt,
    String,
    Time,
    UnsignedInt,
    Uri,
    Url,
    Uuid,
    Xhtml,
}

/// Each kind with the name the data file gives it and the exact schema pattern its matcher
/// implements (`None`: the schema gives no pattern).
const KINDS: [(Kind, &str, &str, Option<&str>); 21] = [
    (Kind::Base64Binary, "base64Binary", "string", None),
    (Kind::Base64Inline, "base64Binary.inline", "string", Some(r"^(\s*([0-9a-zA-Z\+/=]){4}\s*)+$")),
    (Kind::Boolean, "boolean", "boolean", Some("^true|false$")),
    (Kind::Canonical, "canonical", "string", Some(r"^\S*$")),
    (Kind::Code, "code", "string", Some(r"^[^\s]+(\s[^\s]+)*$")),
    (
        Kind::Date,
        "date",
        "string",
        Some(
            r"^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?$",
        ),
    ),
    (
        Kind::DateTime,
        "dateTime",
        "string",
        Some(
            r"^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$",
        ),
    ),
    (Kind::Decimal, "decimal", "number", Some(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$")),
    (Kind::Id, "id", "string", Some(r"^[A-Za-z0-9\-\.]{1,64}$")),
    (
        Kind::Instant,
        "instant",
        "string",
        Some(
            r"^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$",
        ),
    ),
    (Kind::Integer, "integer", "number", Some("^-?([0]|([1-9][0-9]*))$")),
    (Kind::Markdown, "markdown", "string", Some(r"^[ \r\n\t\S]+$")),
    (Kind::Oid, "oid", "string", Some(r"^urn:oid:[0-2](\.(0|[1-9][0-9]*))+$")),
    (Kind::PositiveInt, "positiveInt", "number", Some("^[1-9][0-9]*$")),
    (Kind::String, "string", "string", Some(r"^[ \r\n\t\S]+$")),
    (Kind::Time, "time", "string", Some(r"^([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?$")),
    (Kind::UnsignedInt, "unsignedInt", "number", Some("^[0]|([1-9][0-9]*)$")),
    (Kind::Uri, "uri", "string", Some(r"^\S*$")),
    (Kind::Url, "url", "string", Some(r"^\S*$")),
    (
        Kind::Uuid,
        "uuid",
        "string",
        Some("^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
    ),
    (Kind::Xhtml, "xhtml", "any", None),
];

impl Kind {
    /// The FHIR type name, for messages.
    fn name(self) -> &'static str {
        match self {
            Kind::Base64Inline => "base64Binary",
            _ => KINDS.iter().find(|k| k.0 == self).map_or("primitive", |k| k.1),
        }
    }
}

#[derive(Debug)]
enum Target {
    Primitive(Kind),
    Complex(u16),
    Resource,
    Enum(Box<[&'static str]>),
    Const(&'static str),
}

#[derive(Debug)]
struct Property {
    name: &'static str,
    array: bool,
    /// Has a `_name` sibling carrying the primitive's id and extensions.
    sibling: bool,
    target: Target,
    /// This property's bit in [`TypeDef::required_mask`], or 0.
    required_bit: u64,
    /// R4 (not the schema) requires it, so its `_name` sibling alone satisfies that.
    sibling_satisfies: bool,
    /// The choice group (index into [`TypeDef::choices`]) this is a variant of.
    choice: Option<u8>,
}

#[derive(Debug)]
struct Choice {
    base: &'static str,
    required: bool,
}

/// Choice groups one type may have (ElementDefinition has five).
const MAX_CHOICES: usize = 8;

#[derive(Debug)]
struct TypeDef {
    name: &'static str,
    /// Sorted by name for binary search.
    properties: Vec<Property>,
    required_mask: u64,
    choices: Vec<Choice>,
}

impl TypeDef {
    fn property(&self, name: &str) -> Option<&Property> {
        self.properties.binary_search_by(|p| p.name.cmp(name)).ok().map(|i| &self.properties[i])
    }
}

/// A type as read, before its requirements are resolved to property bits.
struct RawType {
    name: &'static str,
    properties: Vec<Property>,
    schema_required: Vec<&'static str>,
    r4_required: Vec<&'static str>,
    choices: Vec<(&'static str, bool, Vec<&'static str>)>,
}

#[derive(Debug)]
struct Structure {
    types: Vec<TypeDef>,
    by_name: HashMap<&'static str, u16>,
    resources: HashMap<&'static str, u16>,
    element: u16,
}

impl Structure {
    /// Parses the data file; `Err` carries the 1-based line number of the first bad line (0 when
    /// the problem is not one line's).
    fn parse(text: &'static str) -> Result<Structure, usize> {
        let kinds: HashMap<&str, Kind> = KINDS.iter().map(|k| (k.1, k.0)).collect();
        // Pass 1: type names, so properties can refer forward.
        let mut by_name = HashMap::new();
        let mut count = 0u16;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("T ") {
                by_name.insert(rest.split(' ').next().unwrap_or(rest), count);
                count = count.checked_add(1).ok_or(0usize)?;
            }
        }
        let mut raw: Vec<RawType> = Vec::with_capacity(usize::from(count));
        let mut resources = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let bad = || n + 1;
            if line.is_empty() || line.starts_with('#') || line.starts_with("K ") {
                continue;
            }
            if let Some(rest) = line.strip_prefix("T ") {
                let mut parts = rest.splitn(2, ' ');
                let name = parts.next().ok_or_else(bad)?;
                let schema_required = parts.next().map(|r| r.split(',').collect()).unwrap_or_default();
                raw.push(RawType {
                    name,
                    properties: Vec::new(),
                    schema_required,
                    r4_required: Vec::new(),
                    choices: Vec::new(),
                });
                continue;
            }
            if let Some(name) = line.strip_prefix("R ") {
                resources.insert(name, *by_name.get(name).ok_or_else(bad)?);
                continue;
            }
            let ty = raw.last_mut().ok_or_else(bad)?;
            if let Some(name) = line.strip_prefix("! ") {
                ty.r4_required.push(name);
                continue;
            }
            if let Some(rest) = line.strip_prefix("? ") {
                let mut parts = rest.split(' ');
                let (Some(base), Some(min), Some(variants)) = (parts.next(), parts.next(), parts.next())
                else {
                    return Err(bad());
                };
                ty.choices.push((base, min == "1", variants.split(',').collect()));
                continue;
            }
            let (name, mut spec) = line.split_once(' ').ok_or_else(bad)?;
            let array = spec.starts_with('*');
            spec = spec.trim_start_matches('*');
            let sibling = spec.starts_with('+');
            spec = spec.trim_start_matches('+');
            let target = if spec == "@" {
                Target::Resource
            } else if let Some(values) = spec.strip_prefix('=') {
                Target::Enum(values.split('|').collect())
            } else if let Some(value) = spec.strip_prefix('#') {
                Target::Const(value)
            } else if let Some(kind) = kinds.get(spec) {
                Target::Primitive(*kind)
            } else {
                Target::Complex(*by_name.get(spec).ok_or_else(bad)?)
            };
            ty.properties.push(Property {
                name,
                array,
                sibling,
                target,
                required_bit: 0,
                sibling_satisfies: false,
                choice: None,
            });
        }
        let types = raw.into_iter().map(RawType::resolve).collect::<Result<Vec<_>, _>>()?;
        let element = *by_name.get("Element").ok_or(0usize)?;
        Ok(Structure { types, by_name, resources, element })
    }
}

impl RawType {
    fn resolve(mut self) -> Result<TypeDef, usize> {
        self.properties.sort_by(|a, b| a.name.cmp(b.name));
        let index =
            |props: &[Property], name: &str| props.binary_search_by(|p| p.name.cmp(name)).map_err(|_| 0usize);
        let mut required_mask = 0u64;
        let all_required =
            self.schema_required.iter().map(|n| (n, false)).chain(self.r4_required.iter().map(|n| (n, true)));
        for (bit, (name, by_sibling)) in all_required.enumerate() {
            let mask = 1u64.checked_shl(u32::try_from(bit).map_err(|_| 0usize)?).ok_or(0usize)?;
            let i = index(&self.properties, name)?;
            self.properties[i].required_bit = mask;
            self.properties[i].sibling_satisfies = by_sibling;
            required_mask |= mask;
        }
        if self.choices.len() > MAX_CHOICES {
            return Err(0);
        }
        let mut choices = Vec::with_capacity(self.choices.len());
        for (g, (base, required, variants)) in self.choices.into_iter().enumerate() {
            for v in variants {
                let i = index(&self.properties, v)?;
                self.properties[i].choice = Some(u8::try_from(g).map_err(|_| 0usize)?);
            }
            choices.push(Choice { base, required });
        }
        Ok(TypeDef { name: self.name, properties: self.properties, required_mask, choices })
    }
}

impl Structure {
    fn resource(&self, value: &Value, depth: usize) -> Result<(), Fault> {
        let obj = value.as_object().ok_or(Fault::new(Problem::NotAResource))?;
        let rt = match obj.get("resourceType") {
            Some(Value::String(rt)) => rt.as_str(),
            _ => return Err(Fault::new(Problem::MissingResourceType)),
        };
        let ty = *self.resources.get(rt).ok_or(Fault::new(Problem::UnknownResourceType))?;
        self.object(ty, obj, depth).map_err(|f| f.at(Seg::Type(self.types[usize::from(ty)].name)))
    }

    fn complex(&self, ty: u16, value: &Value, depth: usize) -> Result<(), Fault> {
        let obj = value.as_object().ok_or(Fault::new(Problem::ExpectedObject))?;
        self.object(ty, obj, depth)
    }

    fn object(&self, ty: u16, obj: &Map<String, Value>, depth: usize) -> Result<(), Fault> {
        if depth > MAX_DEPTH {
            return Err(Fault::new(Problem::TooDeep));
        }
        let def = &self.types[usize::from(ty)];
        let mut present = 0u64;
        let mut chosen: [Option<&'static str>; MAX_CHOICES] = [None; MAX_CHOICES];
        for (key, value) in obj {
            let prop = if let Some(prop) = def.property(key) {
                self.property(prop, value, depth).map_err(|f| f.at(Seg::Key(prop.name)))?;
                present |= prop.required_bit;
                prop
            } else {
                // `_name` carries the id and extensions of primitive `name`.
                let Some(prop) = key.strip_prefix('_').and_then(|k| def.property(k)).filter(|p| p.sibling)
                else {
                    return Err(Fault::new(Problem::UnknownProperty).at(Seg::UnknownKey(key.clone())));
                };
                self.sibling(prop.array, value, depth).map_err(|f| f.at(Seg::Sibling(prop.name)))?;
                if prop.sibling_satisfies {
                    present |= prop.required_bit;
                }
                prop
            };
            if let Some(g) = prop.choice {
                let slot = &mut chosen[usize::from(g)];
                match slot {
                    Some(other) if *other != prop.name => {
                        let base = def.choices[usize::from(g)].base;
                        return Err(Fault::new(Problem::SeveralChoices).at(Seg::Choice(base)));
                    }
                    _ => *slot = Some(prop.name),
                }
            }
        }
        if present != def.required_mask {
            let missing =
                def.properties.iter().find(|p| p.required_bit != 0 && present & p.required_bit == 0);
            return Err(Fault::new(Problem::MissingRequired).at(Seg::Key(missing.map_or("?", |p| p.name))));
        }
        for (choice, slot) in def.choices.iter().zip(chosen) {
            if choice.required && slot.is_none() {
                return Err(Fault::new(Problem::MissingRequired).at(Seg::Choice(choice.base)));
            }
        }
        Ok(())
    }

    fn property(&self, prop: &Property, value: &Value, depth: usize) -> Result<(), Fault> {
        match (prop.array, value) {
            (true, Value::Array(items)) if items.is_empty() => Err(Fault::new(Problem::EmptyArray)),
            (true, Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    self.one(&prop.target, item, depth).map_err(|f| f.at(Seg::Index(i)))?;
                }
                Ok(())
            }
            (true, _) => Err(Fault::new(Problem::ExpectedArray)),
            (false, Value::Array(_)) => Err(Fault::new(Problem::UnexpectedArray)),
            (false, _) => self.one(&prop.target, value, depth),
        }
    }

    /// A `_x` sibling: an Element, or an array of them (`null` placeholders allowed) if the
    /// primitive is one. A single `null` is not R4 JSON (fhirbolt rejected it), though JSON
    /// Schema lets it through.
    fn sibling(&self, array: bool, value: &Value, depth: usize) -> Result<(), Fault> {
        let element = |v: &Value| self.complex(self.element, v, depth + 1);
        match (array, value) {
            (true, Value::Array(items)) if items.is_empty() => Err(Fault::new(Problem::EmptyArray)),
            (true, Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if !item.is_null() {
                        element(item).map_err(|f| f.at(Seg::Index(i)))?;
                    }
                }
                Ok(())
            }
            (true, _) => Err(Fault::new(Problem::ExpectedArray)),
            (false, Value::Array(_)) => Err(Fault::new(Problem::UnexpectedArray)),
            (false, v) => element(v),
        }
    }

    fn one(&self, target: &Target, value: &Value, depth: usize) -> Result<(), Fault> {
        match target {
            Target::Primitive(kind) => primitive(*kind, value).map_err(Fault::new),
            Target::Complex(ty) => self.complex(*ty, value, depth + 1),
            Target::Resource => self.resource(value, depth + 1),
            Target::Enum(values) => match value {
                Value::String(s) if values.contains(&s.as_str()) => Ok(()),
                _ => Err(Fault::new(Problem::NotAllowedCode)),
            },
            Target::Const(c) => match value {
                Value::String(s) if s == c => Ok(()),
                _ => Err(Fault::new(Problem::WrongConstant)),
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Errors on the way out: built only when something is wrong, so the happy path allocates nothing.

#[derive(Debug)]
struct Fault {
    problem: Problem,
    /// Innermost first.
    path: Vec<Seg>,
}

#[derive(Debug)]
enum Seg {
    Key(&'static str),
    /// `_name`, the sibling of primitive `name`.
    Sibling(&'static str),
    /// A choice type `base[x]`.
    Choice(&'static str),
    UnknownKey(String),
    Index(usize),
    /// A resource (top-level or nested) or, from [`check_as`], the type checked against.
    Type(&'static str),
}

impl Fault {
    fn new(problem: Problem) -> Fault {
        Fault { problem, path: Vec::new() }
    }

    fn at(mut self, seg: Seg) -> Fault {
        self.path.push(seg);
        self
    }

    fn render(self) -> SchemaError {
        let mut path = String::new();
        for seg in self.path.iter().rev() {
            match seg {
                Seg::Type(name) if path.is_empty() => path.push_str(name),
                Seg::Type(name) => {
                    path.push('(');
                    path.push_str(name);
                    path.push(')');
                }
                Seg::Key(k) => {
                    path.push('.');
                    path.push_str(k);
                }
                Seg::Sibling(k) => {
                    path.push_str("._");
                    path.push_str(k);
                }
                Seg::Choice(k) => {
                    path.push('.');
                    path.push_str(k);
                    path.push_str("[x]");
                }
                // Unknown keys are shown only when they look like element names; a key can be
                // anything a source sent, patient data included.
                Seg::UnknownKey(k) if is_element_name(k) => {
                    path.push('.');
                    path.push_str(k);
                }
                Seg::UnknownKey(_) => path.push_str(".(a property whose name is not shown)"),
                Seg::Index(i) => {
                    path.push('[');
                    path.push_str(&i.to_string());
                    path.push(']');
                }
            }
        }
        if path.is_empty() {
            path.push_str("Resource");
        }
        SchemaError { path, problem: self.problem }
    }
}

/// The shape of an R4 element name, optionally with a leading `_`, at most 64 characters.
fn is_element_name(key: &str) -> bool {
    let name = key.strip_prefix('_').unwrap_or(key);
    let mut bytes = name.bytes();
    name.len() <= 64
        && bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric())
}

// ---------------------------------------------------------------------------------------------
// Primitives: hand-coded matchers for the schema's patterns (each a few comparisons; a regex
// engine would cost more to build and to run, and these patterns are fixed by R4).

fn primitive(kind: Kind, value: &Value) -> Result<(), Problem> {
    let ok = match (kind, value) {
        (Kind::Boolean, Value::Bool(_)) => true,
        (Kind::Boolean, _) => return Err(Problem::ExpectedJsonType("boolean")),
        (Kind::Decimal | Kind::Integer | Kind::PositiveInt | Kind::UnsignedInt, Value::Number(n)) => {
            number(kind, n.as_str())
        }
        (Kind::Decimal | Kind::Integer | Kind::PositiveInt | Kind::UnsignedInt, _) => {
            return Err(Problem::ExpectedJsonType("number"));
        }
        (_, Value::String(s)) => string(kind, s),
        _ => return Err(Problem::ExpectedJsonType("string")),
    };
    if ok { Ok(()) } else { Err(Problem::BadFormat(kind.name())) }
}

/// A number as written in the JSON (serde_json keeps the literal: `arbitrary_precision`).
fn number(kind: Kind, lit: &str) -> bool {
    let b = lit.as_bytes();
    // R4 makes all three 32-bit: "for values larger than this, use decimal".
    let in_range = |min: i64| {
        lit.len() <= 11 && lit.parse::<i64>().is_ok_and(|n| (min..=i64::from(i32::MAX)).contains(&n))
    };
    match kind {
        Kind::Integer => whole(b.strip_prefix(b"-").unwrap_or(b)) && in_range(i64::from(i32::MIN)),
        Kind::PositiveInt => whole(b) && in_range(1),
        Kind::UnsignedInt => whole(b) && in_range(0),
        // Every JSON number matches decimal's pattern, which is JSON's number grammar.
        _ => decimal(b),
    }
}

/// `0|[1-9][0-9]*`
fn whole(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(u8::is_ascii_digit) && (b[0] != b'0' || b.len() == 1)
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
fn decimal(b: &[u8]) -> bool {
    let b = b.strip_prefix(b"-").unwrap_or(b);
    let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if !whole(&b[..int_len]) {
        return false;
    }
    let mut rest = &b[int_len..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    if let Some(exp) = rest.strip_prefix(b"e").or_else(|| rest.strip_prefix(b"E")) {
        let exp = exp.strip_prefix(b"+").or_else(|| exp.strip_prefix(b"-")).unwrap_or(exp);
        return !exp.is_empty() && exp.iter().all(u8::is_ascii_digit);
    }
    rest.is_empty()
}

fn string(kind: Kind, s: &str) -> bool {
    let b = s.as_bytes();
    match kind {
        Kind::Base64Binary | Kind::Xhtml => true,
        Kind::Base64Inline => base64_inline(s),
        Kind::String | Kind::Markdown => {
            !s.is_empty() && all_chars(s, |c| matches!(c, ' ' | '\r' | '\n' | '\t') || !is_space(c))
        }
        Kind::Uri | Kind::Url | Kind::Canonical => all_chars(s, |c| !is_space(c)),
        Kind::Code => code(s),
        Kind::Id => {
            (1..=64).contains(&b.len())
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'.')
        }
        Kind::Oid => b.strip_prefix(b"urn:oid:").is_some_and(oid),
        Kind::Uuid => b.strip_prefix(b"urn:uuid:").is_some_and(uuid),
        Kind::Date => date(b).is_some_and(|(rest, _)| rest.is_empty()),
        Kind::DateTime => match date(b) {
            Some((rest, true)) => rest.is_empty() || rest.strip_prefix(b"T").and_then(time).is_some_and(zone),
            Some((rest, false)) => rest.is_empty(),
            None => false,
        },
        Kind::Instant => match date(b) {
            Some((rest, true)) => {
                rest.strip_prefix(b"T").and_then(time).is_some_and(|z| !z.is_empty() && zone(z))
            }
            _ => false,
        },
        Kind::Time => time(b).is_some_and(<[u8]>::is_empty),
        Kind::Boolean | Kind::Decimal | Kind::Integer | Kind::PositiveInt | Kind::UnsignedInt => false,
    }
}

/// `\s`: ECMA-262's WhiteSpace and LineTerminator together with Python's `str.isspace`, so that a
/// string passing here passes the schema under either regex dialect. Rust's `is_whitespace` is
/// Unicode White_Space, which has all but U+001C..U+001F (Python) and U+FEFF (ECMA-262).
fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c) || c == '\u{feff}'
}

/// Runs `ok` over every character, with an ASCII fast path.
fn all_chars(s: &str, ok: impl Fn(char) -> bool) -> bool {
    if s.is_ascii() { s.bytes().all(|b| ok(char::from(b))) } else { s.chars().all(ok) }
}

/// `^[^\s]+(\s[^\s]+)*$`: no leading, trailing or doubled whitespace, not empty.
fn code(s: &str) -> bool {
    let mut prev_space = true;
    for c in s.chars() {
        let space = is_space(c);
        if space && prev_space {
            return false;
        }
        prev_space = space;
    }
    !prev_space
}

/// `^(\s*([0-9a-zA-Z\+/=]){4}\s*)+$`: runs of base64 characters whose lengths are multiples of
/// four, separated or surrounded by whitespace only, at least one run.
fn base64_inline(s: &str) -> bool {
    let mut run = 0usize;
    let mut seen = false;
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '=' {
            run += 1;
            seen = true;
        } else if is_space(c) {
            if !run.is_multiple_of(4) {
                return false;
            }
            run = 0;
        } else {
            return false;
        }
    }
    seen && run.is_multiple_of(4)
}

/// `[0-2](\.(0|[1-9][0-9]*))+` after `urn:oid:`.
fn oid(b: &[u8]) -> bool {
    let Some((first, rest)) = b.split_first() else { return false };
    if !matches!(first, b'0'..=b'2') || rest.is_empty() {
        return false;
    }
    rest.strip_prefix(b".").is_some_and(|arcs| arcs.split(|c| *c == b'.').all(whole))
}

/// `[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}` after `urn:uuid:`.
fn uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
}

fn two_digits(b: &[u8], max: u8) -> bool {
    b.len() >= 2
        && b[0].is_ascii_digit()
        && b[1].is_ascii_digit()
        && (b[0] - b'0') * 10 + (b[1] - b'0') <= max
}

/// A year (four digits, not `0000`), optionally `-MM`, optionally `-DD` (01 to 31: the pattern
/// does not know month lengths). Returns what follows and whether the day was present.
fn date(b: &[u8]) -> Option<(&[u8], bool)> {
    if b.len() < 4 || !b[..4].iter().all(u8::is_ascii_digit) || &b[..4] == b"0000" {
        return None;
    }
    let Some(rest) = b[4..].strip_prefix(b"-") else { return Some((&b[4..], false)) };
    if !two_digits(rest, 12) || &rest[..2] == b"00" {
        return None;
    }
    let Some(rest) = rest[2..].strip_prefix(b"-") else { return Some((&rest[2..], false)) };
    if !two_digits(rest, 31) || &rest[..2] == b"00" {
        return None;
    }
    Some((&rest[2..], true))
}

/// `hh:mm:ss(\.[0-9]+)?` with hours to 23 and seconds to 60; returns what follows.
fn time(b: &[u8]) -> Option<&[u8]> {
    if b.len() < 8
        || !two_digits(b, 23)
        || b[2] != b':'
        || !two_digits(&b[3..], 59)
        || b[5] != b':'
        || !two_digits(&b[6..], 60)
    {
        return None;
    }
    let rest = &b[8..];
    match rest.strip_prefix(b".") {
        Some(frac) => {
            let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
            (n > 0).then(|| &frac[n..])
        }
        None => Some(rest),
    }
}

/// `Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)`, the whole of what is left.
fn zone(b: &[u8]) -> bool {
    match b {
        b"Z" | b"+14:00" | b"-14:00" => true,
        [b'+' | b'-', h @ ..] if h.len() == 5 => two_digits(h, 13) && h[2] == b':' && two_digits(&h[3..], 59),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_file_parses_and_its_patterns_are_the_ones_the_matchers_implement() {
        let s = Structure::parse(STRUCTURE_TEXT).expect("parses");
        assert!(s.resources.len() >= 145, "{} resource types", s.resources.len());
        let mut seen = 0;
        for line in STRUCTURE_TEXT.lines().filter_map(|l| l.strip_prefix("K ")) {
            let mut parts = line.splitn(3, ' ');
            let (name, json_type, pattern) = (parts.next(), parts.next(), parts.next());
            let known = KINDS.iter().find(|k| Some(k.1) == name);
            let Some((_, _, want_type, want_pattern)) = known else { panic!("no matcher for kind {name:?}") };
            assert_eq!(
                (json_type, pattern),
                (Some(*want_type), *want_pattern),
                "kind {name:?} changed in the schema"
            );
            seen += 1;
        }
        assert_eq!(seen, KINDS.len());
    }

    fn ok(kind: Kind, value: Value) -> bool {
        primitive(kind, &value).is_ok()
    }

    #[test]
    fn primitive_matchers_follow_the_schema_patterns() {
        use serde_json::json;
        let s = |v: &str| json!(v);
        let table: &[(Kind, &[&str], &[&str])] = &[
            (
                Kind::Date,
                &["1980", "1980-02", "1980-02-31", "0001-01-01"],
                &[
                    "01/02/1980",
                    "1980-13",
                    "1980-00-10",
                    "0000",
                    "1980-1-01",
                    "1980-02-31T10:00:00Z",
                    "",
                    "1980-02-01\n",
                ],
            ),
            (
                Kind::DateTime,
                &[
                    "2020",
                    "2020-12",
                    "2020-12-31",
                    "2020-12-31T23:59:60Z",
                    "2020-01-01T00:00:00.123+14:00",
                    "2020-01-01T10:00:00-13:59",
                ],
                &[
                    "2020-13-45",
                    "2020-01-01T10:00:00",
                    "2020-01-01T10:00Z",
                    "2020-01-01T24:00:00Z",
                    "2020-01-01T10:00:00+14:01",
                    "2020-01T10:00:00Z",
                    "2020-01-01T10:00:00.Z",
                ],
            ),
            (
                Kind::Instant,
                &["2020-01-01T10:00:00Z", "2020-01-01T10:00:00.5+01:00"],
                &["2020-01-01", "2020-01-01T10:00:00"],
            ),
            (Kind::Time, &["10:00:00", "23:59:60.25"], &["10:00", "24:00:00", "10:00:00Z"]),
            (Kind::Id, &["a", "A-1.b", &"x".repeat(64)], &["", "a b", "a_b", &"x".repeat(65)]),
            (Kind::Code, &["final", "a b", "a\tb"], &["", " a", "a ", "a  b", "a\u{a0}"]),
            (
                Kind::String,
                &["x", " x ", "a\r\n\tb", "é"],
                &["", "a\u{b}b", "a\u{a0}b", "a\u{1f}", "a\u{feff}"],
            ),
            (Kind::Uri, &["", "http://x/y", "urn:uuid:1"], &["a b", "a\n"]),
            (
                Kind::Oid,
                &["urn:oid:1.2.840", "urn:oid:2.0"],
                &["urn:oid:1", "urn:oid:3.1", "urn:oid:1.02", "urn:oid:1..2", "1.2.3"],
            ),
            (
                Kind::Uuid,
                &["urn:uuid:c757873d-ec9a-4326-a141-556f43239520"],
                &["urn:uuid:C757873D-EC9A-4326-A141-556F43239520", "c757873d-ec9a-4326-a141-556f43239520"],
            ),
            (
                Kind::Base64Inline,
                &["AAAA", "AAAA BBBB", " AAAAAAAA\n", "ab+/"],
                &["", "AAA", "AA AA", "AAAA*"],
            ),
            (Kind::Base64Binary, &["", "not base64 at all"], &[]),
            (Kind::Xhtml, &["<div xmlns=\"http://www.w3.org/1999/xhtml\"/>"], &[]),
        ];
        for (kind, good, bad) in table {
            for v in *good {
                assert!(ok(*kind, s(v)), "{kind:?} should accept {v:?}");
            }
            for v in *bad {
                assert!(!ok(*kind, s(v)), "{kind:?} should reject {v:?}");
            }
        }
    }

    #[test]
    fn numbers_are_checked_as_written() {
        let n = |lit: &str| serde_json::from_str::<Value>(lit).expect("number");
        for lit in ["0", "-0", "7", "-2147483648", "2147483647"] {
            assert!(ok(Kind::Integer, n(lit)), "{lit}");
        }
        for lit in ["1.0", "1e2", "2147483648", "-2147483649", "99999999999999999999"] {
            assert!(!ok(Kind::Integer, n(lit)), "{lit}");
        }
        assert!(
            ok(Kind::PositiveInt, n("1"))
                && !ok(Kind::PositiveInt, n("0"))
                && !ok(Kind::PositiveInt, n("-1"))
        );
        assert!(
            ok(Kind::UnsignedInt, n("0"))
                && !ok(Kind::UnsignedInt, n("-1"))
                && !ok(Kind::UnsignedInt, n("1.5"))
        );
        for lit in ["1.50", "-0.0", "1e-5", "6.02E23", "123456789012345678901234567890.1"] {
            assert!(ok(Kind::Decimal, n(lit)), "{lit}");
        }
        assert!(!ok(Kind::Decimal, serde_json::json!("1.5")));
        assert!(!ok(Kind::Integer, serde_json::json!("1")));
        assert!(!ok(Kind::Boolean, serde_json::json!("true")) && ok(Kind::Boolean, serde_json::json!(false)));
    }

    #[test]
    fn unknown_keys_are_named_only_when_they_look_like_element_names() {
        let v = serde_json::json!({"resourceType": "Basic", "code": {"text": "x"}, "colour": 1});
        assert_eq!(
            check_resource(&v).map_err(|e| e.to_string()),
            Err("Basic.colour: unknown property".into())
        );
        let v = serde_json::json!({"resourceType": "Basic", "code": {"text": "x"}, "John Smith 1950": 1});
        assert_eq!(
            check_resource(&v).map_err(|e| e.to_string()),
            Err("Basic.(a property whose name is not shown): unknown property".into())
        );
    }

    #[test]
    fn check_as_validates_one_complex_type() {
        let name = serde_json::json!({"family": "X", "given": ["A"]});
        assert_eq!(check_as("HumanName", &name), Some(Ok(())));
        let bad = serde_json::json!({"family": ["X"]});
        assert_eq!(
            check_as("HumanName", &bad).map(|r| r.map_err(|e| e.to_string())),
            Some(Err("HumanName.family: expected a single value, not an array".into()))
        );
        assert_eq!(check_as("NoSuchType", &name), None);
    }
}
