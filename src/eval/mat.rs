//! The part of MATLAB's level-5 MAT-file format that WIDER FACE's ground truth uses: numeric,
//! character and cell arrays, each variable usually zlib-compressed (`miCOMPRESSED`).
//!
//! Written here because the `matfile` crate reads numeric arrays only (it skips cell and char
//! arrays, which hold every list of the ground truth). The bytes come from outside: every
//! length is checked against the bytes actually present, nothing is allocated from a declared
//! size, decompression stops at [`MAX_DECOMPRESSED`] bytes, and cell nesting is limited to
//! [`MAX_DEPTH`] levels, so a damaged or hostile file is an error, never a panic.
//!
//! Layout (MathWorks, "MAT-File Format", level 5): a 128-byte header whose last two bytes are
//! `IM` written in the file's byte order, then data elements: an 8-byte tag (type, byte count;
//! or, when the count fits in 2 bytes, a 4-byte "small" tag with up to 4 data bytes) and the
//! data, padded to 8 bytes inside an array. An array (`miMATRIX`) holds flags (class), sizes, a
//! name, then its content: the real part (numeric, in any integer or float storage type),
//! characters, or one `miMATRIX` per cell.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Most bytes one compressed variable may inflate to. The official ground truth files inflate
/// to about 3 MB each; this leaves ample room while refusing decompression bombs.
pub const MAX_DECOMPRESSED: u64 = 256 << 20;
/// Deepest nesting of cell arrays accepted (the ground truth nests two levels).
pub const MAX_DEPTH: usize = 16;

// Data types (the tag's first word).
const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const MI_UTF8: u32 = 16;
const MI_UTF16: u32 = 17;
const MI_UTF32: u32 = 18;

// Array classes (the low byte of the first flags word).
const MX_CELL: u32 = 1;
const MX_CHAR: u32 = 4;
const MX_DOUBLE: u32 = 6;
const MX_UINT64: u32 = 15;
const COMPLEX_FLAG: u32 = 0x0800;

/// One array: its sizes and its content, column-major as MATLAB stores it.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub dims: Vec<usize>,
    pub data: Data,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// Any numeric class (double, single, integers, logical), as f64: exact for every integer
    /// class up to 32 bits and for values below 2^53 of the 64-bit ones.
    Numeric(Vec<f64>),
    /// A character array, one `char` per element.
    Char(Vec<char>),
    Cell(Vec<Array>),
}

/// A named top-level variable.
#[derive(Clone, Debug, PartialEq)]
pub struct Variable {
    pub name: String,
    pub value: Array,
}

/// The variables of a MAT-file, in file order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MatFile {
    pub variables: Vec<Variable>,
}

impl Array {
    /// Number of elements (the product of the sizes).
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of rows (the first size), as numpy's `len` gives it for a loaded array.
    pub fn rows(&self) -> usize {
        self.dims.first().copied().unwrap_or(0)
    }

    /// The number of columns of a 2-D array.
    pub fn cols(&self) -> usize {
        if self.dims.len() == 2 {
            self.dims[1]
        } else {
            self.dims[1..].iter().product()
        }
    }

    /// The text of a character array of one row (`'0--Parade'`); `None` for anything else.
    pub fn as_str(&self) -> Option<String> {
        match &self.data {
            Data::Char(chars) if self.rows() <= 1 || self.cols() <= 1 => {
                Some(chars.iter().collect())
            }
            _ => None,
        }
    }

    pub fn as_cells(&self) -> Option<&[Array]> {
        match &self.data {
            Data::Cell(cells) => Some(cells),
            _ => None,
        }
    }

    pub fn as_numeric(&self) -> Option<&[f64]> {
        match &self.data {
            Data::Numeric(v) => Some(v),
            _ => None,
        }
    }
}

impl MatFile {
    /// Reads and parses a MAT-file; errors name the file.
    pub fn read(path: &Path) -> Result<MatFile> {
        let bytes = std::fs::read(path).map_err(|e| Error::MatFile {
            path: Some(path.to_path_buf()),
            reason: e.to_string(),
        })?;
        Self::parse(&bytes).map_err(|e| match e {
            Error::MatFile { path: None, reason } => Error::MatFile {
                path: Some(PathBuf::from(path)),
                reason,
            },
            other => other,
        })
    }

    /// Parses the bytes of a level-5 MAT-file (either byte order, compressed or not).
    pub fn parse(bytes: &[u8]) -> Result<MatFile> {
        if bytes.len() < 128 {
            return Err(err(format!(
                "{} bytes is shorter than the 128-byte MAT-file header",
                bytes.len()
            )));
        }
        let big = match &bytes[126..128] {
            b"IM" => false,
            b"MI" => true,
            _ => {
                return Err(err(
                    "no level-5 MAT-file header (a MATLAB v4 file, or not a MAT-file at all); \
                     re-save it in MATLAB with `save -v7`",
                ))
            }
        };
        let version = if big {
            u16::from_be_bytes([bytes[124], bytes[125]])
        } else {
            u16::from_le_bytes([bytes[124], bytes[125]])
        };
        if version == 0x0200 {
            return Err(err(
                "this is a MATLAB v7.3 (HDF5) file, which this reader does not handle; \
                 re-save it in MATLAB with `save -v7`",
            ));
        }
        let mut top = Cursor {
            buf: bytes,
            pos: 128,
            big,
        };
        let mut variables = Vec::new();
        while top.pos < bytes.len() {
            // Top-level elements follow one another without padding (scipy reads them so).
            let (ty, data) = top.element(false).map_err(|r| {
                err(format!(
                    "variable {} at byte {}: {r}",
                    variables.len() + 1,
                    top.pos
                ))
            })?;
            let inflated;
            let (ty, data) = if ty == MI_COMPRESSED {
                inflated = inflate(data, big).map_err(|r| {
                    err(format!("compressed variable {}: {r}", variables.len() + 1))
                })?;
                let mut inner = Cursor {
                    buf: &inflated,
                    pos: 0,
                    big,
                };
                let (ty, data) = inner.element(false).map_err(|r| {
                    err(format!("compressed variable {}: {r}", variables.len() + 1))
                })?;
                (ty, data)
            } else {
                (ty, data)
            };
            if ty != MI_MATRIX {
                return Err(err(format!(
                    "top-level element {} has data type {ty}, expected an array (miMATRIX, 14)",
                    variables.len() + 1
                )));
            }
            let (name, value) = matrix(data, big, 0)
                .map_err(|r| err(format!("variable {}: {r}", variables.len() + 1)))?;
            variables.push(Variable { name, value });
        }
        Ok(MatFile { variables })
    }

    /// The variable of that name.
    pub fn get(&self, name: &str) -> Option<&Array> {
        self.variables
            .iter()
            .find(|v| v.name == name)
            .map(|v| &v.value)
    }
}

fn err(reason: impl Into<String>) -> Error {
    Error::MatFile {
        path: None,
        reason: reason.into(),
    }
}

/// Inflates one `miCOMPRESSED` element: just the first inner element (tag and data), as
/// scipy reads it, and no byte beyond what that element declares nor [`MAX_DECOMPRESSED`].
fn inflate(data: &[u8], big: bool) -> Result<Vec<u8>, String> {
    let mut z = flate2::read::ZlibDecoder::new(data);
    let mut tag = [0u8; 8];
    z.read_exact(&mut tag)
        .map_err(|e| format!("zlib data too short for an element tag ({e})"))?;
    let word = |i: usize| {
        let b = [tag[i], tag[i + 1], tag[i + 2], tag[i + 3]];
        if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    // A small element carries its data inside the tag.
    let declared = if word(0) >> 16 != 0 { 0 } else { word(4) };
    let want = u64::from(declared);
    if want > MAX_DECOMPRESSED {
        return Err(format!(
            "a compressed variable declares {want} bytes, over the {MAX_DECOMPRESSED}-byte limit \
             of this reader (the WIDER FACE ground truth needs a few MB)"
        ));
    }
    // read_to_end grows with the bytes that really come out, not with the declared size.
    let mut out = tag.to_vec();
    z.take(want)
        .read_to_end(&mut out)
        .map_err(|e| format!("corrupt zlib data ({e})"))?;
    Ok(out)
}

/// A position in a byte buffer of known byte order.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    big: bool,
}

impl<'a> Cursor<'a> {
    fn u32_at(&self, at: usize) -> Result<u32, String> {
        let b = self
            .buf
            .get(at..at.checked_add(4).ok_or("offset overflow")?)
            .ok_or_else(|| format!("truncated: needs 4 bytes at offset {at}"))?;
        let b = [b[0], b[1], b[2], b[3]];
        Ok(if self.big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// One data element: its type and data. `padded`: inside an array, where every element
    /// ends on an 8-byte boundary.
    fn element(&mut self, padded: bool) -> Result<(u32, &'a [u8]), String> {
        let first = self.u32_at(self.pos)?;
        if first >> 16 != 0 {
            // Small element: type in the low half, byte count (at most 4) in the high half,
            // data in the next 4 bytes; 8 bytes in all.
            let (ty, n) = (first & 0xffff, (first >> 16) as usize);
            if n > 4 {
                return Err(format!(
                    "small data element at offset {} claims {n} bytes (at most 4)",
                    self.pos
                ));
            }
            let start = self.pos + 4;
            let data = self
                .buf
                .get(start..start + n)
                .ok_or_else(|| format!("truncated small data element at offset {}", self.pos))?;
            self.pos = (self.pos + 8).min(self.buf.len());
            return Ok((ty, data));
        }
        let n = self.u32_at(self.pos + 4)? as usize;
        let start = self.pos + 8;
        let end = start
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                format!(
                    "data element at offset {} declares {n} bytes but only {} remain (truncated \
                     or damaged file)",
                    self.pos,
                    self.buf.len().saturating_sub(start)
                )
            })?;
        let data = &self.buf[start..end];
        // Inside an array every element ends on an 8-byte boundary; the last one's padding may
        // be missing, so never step past the end.
        self.pos = if padded {
            (end + (8 - n % 8) % 8).min(self.buf.len())
        } else {
            end
        };
        Ok((first, data))
    }
}

/// Parses the content of one `miMATRIX` element: (name, array).
fn matrix(data: &[u8], big: bool, depth: usize) -> Result<(String, Array), String> {
    if data.is_empty() {
        // MATLAB writes an empty cell element as an array element with no content.
        return Ok((
            String::new(),
            Array {
                dims: vec![0, 0],
                data: Data::Numeric(Vec::new()),
            },
        ));
    }
    if depth > MAX_DEPTH {
        return Err(format!("cell arrays nested deeper than {MAX_DEPTH} levels"));
    }
    let mut c = Cursor {
        buf: data,
        pos: 0,
        big,
    };
    let (ty, flags) = c.element(true)?;
    if ty != MI_UINT32 || flags.len() != 8 {
        return Err(format!(
            "array flags must be 8 bytes of miUINT32, found {} bytes of type {ty}",
            flags.len()
        ));
    }
    let flags = Cursor {
        buf: flags,
        pos: 0,
        big,
    }
    .u32_at(0)?;
    let class = flags & 0xff;
    let (ty, dims_bytes) = c.element(true)?;
    if ty != MI_INT32 || dims_bytes.len() < 8 || !dims_bytes.len().is_multiple_of(4) {
        return Err(format!(
            "array sizes must be at least two miINT32 values, found {} bytes of type {ty}",
            dims_bytes.len()
        ));
    }
    let dims = numbers(MI_INT32, dims_bytes, big)?
        .into_iter()
        .map(|d| {
            if d < 0.0 {
                Err(format!("negative array size {d}"))
            } else {
                Ok(d as usize)
            }
        })
        .collect::<Result<Vec<usize>, String>>()?;
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("array sizes {dims:?} overflow"))?;
    let (ty, name) = c.element(true)?;
    if ty != MI_INT8 && ty != MI_UINT8 {
        return Err(format!("array name has data type {ty}, expected miINT8"));
    }
    let name = String::from_utf8_lossy(name).into_owned();
    let what = |r: String| {
        if name.is_empty() {
            r
        } else {
            format!("`{name}`: {r}")
        }
    };
    let data = match class {
        MX_CELL => {
            // Cells are pushed as they are read: a false count cannot allocate ahead.
            let mut cells = Vec::new();
            for k in 0..count {
                if c.at_end() {
                    return Err(what(format!(
                        "cell array of {count} elements ends after {k} (truncated)"
                    )));
                }
                let (ty, inner) = c.element(true).map_err(&what)?;
                if ty != MI_MATRIX {
                    return Err(what(format!(
                        "cell element {} has data type {ty}, expected an array (miMATRIX)",
                        k + 1
                    )));
                }
                let (_, a) = matrix(inner, big, depth + 1)
                    .map_err(|r| what(format!("cell element {}: {r}", k + 1)))?;
                cells.push(a);
            }
            Data::Cell(cells)
        }
        MX_CHAR => {
            let chars = if c.at_end() {
                Vec::new()
            } else {
                let (ty, bytes) = c.element(true).map_err(&what)?;
                chars(ty, bytes, big).map_err(&what)?
            };
            if chars.len() != count {
                return Err(what(format!(
                    "character array of sizes {dims:?} holds {} characters",
                    chars.len()
                )));
            }
            Data::Char(chars)
        }
        MX_DOUBLE..=MX_UINT64 => {
            if flags & COMPLEX_FLAG != 0 {
                return Err(what("complex arrays are not supported".into()));
            }
            let values = if c.at_end() {
                Vec::new()
            } else {
                let (ty, bytes) = c.element(true).map_err(&what)?;
                numbers(ty, bytes, big).map_err(&what)?
            };
            if values.len() != count {
                return Err(what(format!(
                    "numeric array of sizes {dims:?} holds {} values",
                    values.len()
                )));
            }
            Data::Numeric(values)
        }
        2 => return Err(what("struct arrays are not supported".into())),
        3 => return Err(what("object arrays are not supported".into())),
        5 => return Err(what("sparse arrays are not supported".into())),
        _ => return Err(what(format!("unknown array class {class}"))),
    };
    Ok((name, Array { dims, data }))
}

/// Decodes numeric storage of any type to f64.
fn numbers(ty: u32, b: &[u8], big: bool) -> Result<Vec<f64>, String> {
    // The file's byte order picks the reading of each N-byte group.
    macro_rules! order {
        ($t:ty) => {
            |a| {
                if big {
                    <$t>::from_be_bytes(a) as f64
                } else {
                    <$t>::from_le_bytes(a) as f64
                }
            }
        };
    }
    match ty {
        MI_INT8 => decode(b, |a: [u8; 1]| a[0] as i8 as f64),
        MI_UINT8 => decode(b, |a: [u8; 1]| a[0] as f64),
        MI_INT16 => decode(b, order!(i16)),
        MI_UINT16 => decode(b, order!(u16)),
        MI_INT32 => decode(b, order!(i32)),
        MI_UINT32 => decode(b, order!(u32)),
        MI_SINGLE => decode(b, order!(f32)),
        MI_DOUBLE => decode(b, order!(f64)),
        MI_INT64 => decode(b, order!(i64)),
        MI_UINT64 => decode(b, order!(u64)),
        _ => Err(format!("numeric data has non-numeric data type {ty}")),
    }
}

/// Splits `b` into N-byte values, each converted by `value`.
fn decode<const N: usize>(b: &[u8], value: impl Fn([u8; N]) -> f64) -> Result<Vec<f64>, String> {
    if !b.len().is_multiple_of(N) {
        return Err(format!(
            "{} bytes is not a whole number of {N}-byte values",
            b.len()
        ));
    }
    Ok(b.chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            value(a)
        })
        .collect())
}

/// Decodes character storage: UTF-8, UTF-16 (MATLAB's usual miUINT16), UTF-32 or bytes.
fn chars(ty: u32, b: &[u8], big: bool) -> Result<Vec<char>, String> {
    match ty {
        MI_UTF8 => std::str::from_utf8(b)
            .map(|s| s.chars().collect())
            .map_err(|e| format!("character data is not UTF-8 ({e})")),
        MI_UINT16 | MI_UTF16 | MI_INT16 => {
            let units = numbers(MI_UINT16, b, big)?
                .into_iter()
                .map(|u| u as u16)
                .collect::<Vec<u16>>();
            char::decode_utf16(units)
                .map(|c| c.map_err(|e| format!("character data is not UTF-16 ({e})")))
                .collect()
        }
        MI_UTF32 | MI_UINT32 | MI_INT32 => numbers(MI_UINT32, b, big)?
            .into_iter()
            .map(|u| char::from_u32(u as u32).ok_or_else(|| format!("invalid character {u}")))
            .collect(),
        // One byte per character: Latin-1, which maps each byte to the code point of its value.
        MI_UINT8 | MI_INT8 => Ok(b.iter().map(|&x| char::from(x)).collect()),
        _ => Err(format!("character data has data type {ty}")),
    }
}
