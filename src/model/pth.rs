//! PyTorch checkpoints (`torch.save(model.state_dict(), "x.pth")`) read without Python.
//!
//! Two container formats:
//! - legacy (torch < 1.6, e.g. Pytorch_Retinaface's released files): five pickles in a row,
//!   the magic number, the protocol version (1001), a `sys_info` dict, the state dict, the
//!   list of storage keys, and then for each storage its element count (u64, little-endian)
//!   and its raw little-endian data;
//! - zip (torch >= 1.6): `<archive>/data.pkl` holds the state dict pickle and
//!   `<archive>/data/<key>` each storage's raw bytes.
//!
//! In both, a tensor is pickled as `torch._utils._rebuild_tensor_v2(storage, offset, size,
//! stride, requires_grad, hooks[, metadata])` where `storage` is a *persistent id*
//! `('storage', torch.FloatStorage, key, location, numel[, view])`.
//!
//! Unpickling is where Python checkpoints run code: a pickle may call any importable global.
//! This reader is a small stack machine that knows only the opcodes a state dict uses and
//! accepts only the globals one needs (`collections.OrderedDict`, `_rebuild_tensor_v2`,
//! `_rebuild_parameter`, the `torch.*Storage` types); anything else is refused with
//! [`Error::UnsafeCheckpoint`] naming the global, before anything is called. Nothing is
//! ever executed: the "calls" build plain Rust values.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Read;
use std::rc::Rc;

use super::arch::Model;
use super::weights::Tensor;
use crate::error::{Error, Result};

/// The legacy format's first pickle: `0x1950a86a20f9469cfc6c` as a Python int.
const LEGACY_MAGIC: u128 = 0x1950a86a20f9469cfc6c;
/// The legacy format's second pickle.
const LEGACY_PROTOCOL: i64 = 1001;
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

/// Whether `bytes` look like a PyTorch checkpoint (a zip archive or a pickle), as opposed to
/// a safetensors file (which starts with a little-endian header length).
pub fn is_checkpoint(bytes: &[u8]) -> bool {
    // A safetensors header length can start with 0x80 too (e.g. 384 bytes): its JSON header
    // begins at byte 8 with `{`, where a legacy checkpoint has the magic number's bytes.
    let safetensors = bytes.len() >= 9
        && bytes[8] == b'{'
        && u64::from_le_bytes(bytes[..8].try_into().unwrap()) <= (bytes.len() - 8) as u64;
    bytes.starts_with(ZIP_MAGIC)
        || (!safetensors && bytes.len() >= 2 && bytes[0] == 0x80 && bytes[1] <= 5)
}

/// The float32 tensors of a checkpoint's state dict, in file order, with a `module.` prefix
/// (`nn.DataParallel`) stripped and `num_batches_tracked` dropped. A checkpoint saved as
/// `{"state_dict": ...}` is unwrapped. Any other non-float32 tensor, a non-contiguous one,
/// or a global outside the allow-list is an error.
pub fn read(bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    if bytes.starts_with(ZIP_MAGIC) {
        read_zip(bytes)
    } else {
        read_legacy(bytes)
    }
}

fn bad(reason: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: None,
        reason: reason.into(),
    }
}

/// Storages named by a pickle's persistent ids, by key.
type Storages = HashMap<String, Rc<StorageRef>>;

/// Runs the pickle at `*pos`, moving `*pos` past it; errors say which pickle failed.
fn pickle_at(bytes: &[u8], pos: &mut usize, what: &str) -> Result<(Value, Storages)> {
    let mut u = Unpickler::new(bytes, *pos);
    let v = u.run().map_err(|e| match e {
        Error::Checkpoint { reason, .. } => bad(format!("{what}: {reason}")),
        other => other,
    })?;
    *pos = u.pos;
    Ok((v, u.storages))
}

fn read_legacy(bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let mut pos = 0;
    match pickle_at(bytes, &mut pos, "magic number")?.0 {
        Value::BigInt(b) if b == LEGACY_MAGIC.to_le_bytes()[..10] => {}
        _ => {
            return Err(bad(
                "it is a pickle, but not one written by torch.save (no magic number)",
            ))
        }
    }
    match pickle_at(bytes, &mut pos, "protocol version")?.0 {
        Value::Int(LEGACY_PROTOCOL) => {}
        // Only the kind: a hostile pickle's value may contain itself.
        v => {
            return Err(bad(format!(
                "unsupported legacy protocol version (a {}, expected the int {LEGACY_PROTOCOL})",
                v.kind()
            )))
        }
    }
    let sys_info = pickle_at(bytes, &mut pos, "sys_info")?.0;
    if let Some(Value::Bool(false)) = sys_info.dict_get("little_endian") {
        return Err(bad("the checkpoint was saved on a big-endian machine"));
    }
    let (root, storages) = pickle_at(bytes, &mut pos, "state dict")?;
    let keys = match pickle_at(bytes, &mut pos, "storage keys")?.0 {
        Value::List(l) => l
            .borrow()
            .iter()
            .map(|k| k.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("the storage key list holds a non-string"))?,
        _ => return Err(bad("no storage key list after the state dict")),
    };
    let mut data: HashMap<String, &[u8]> = HashMap::new();
    for key in keys {
        let s = storages
            .get(&key)
            .ok_or_else(|| bad(format!("storage `{key}` is stored but never used")))?;
        let count = bytes
            .get(pos..pos + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
            .ok_or_else(|| bad(format!("the file ends before storage `{key}`")))?;
        let len = count
            .checked_mul(s.dtype.size() as u64)
            .filter(|n| *n <= (bytes.len() - pos - 8) as u64)
            .ok_or_else(|| {
                bad(format!(
                    "storage `{key}` claims {count} elements, more than the file holds (truncated?)"
                ))
            })? as usize;
        data.insert(key, &bytes[pos + 8..pos + 8 + len]);
        pos += 8 + len;
    }
    tensors(&root, |key| {
        data.get(key)
            .map(|d| std::borrow::Cow::Borrowed(*d))
            .ok_or_else(|| bad(format!("storage `{key}` is missing from the file")))
    })
}

fn read_zip(bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let zerr = |e: zip::result::ZipError| bad(format!("broken zip archive ({e})"));
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(zerr)?;
    let pkl = archive
        .file_names()
        .filter(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
        .min_by_key(|n| n.len())
        .map(str::to_string)
        .ok_or_else(|| bad("a zip archive without data.pkl is not a torch.save checkpoint"))?;
    let prefix = pkl[..pkl.len() - "data.pkl".len()].to_string();
    let mut read_entry = |name: &str| -> Result<Vec<u8>> {
        let mut f = archive.by_name(name).map_err(zerr)?;
        let size = f.size();
        if size > f.compressed_size().saturating_mul(1032) || size > bytes.len() as u64 * 1032 {
            // deflate cannot expand more than 1032x: a larger claim is a corrupt header.
            return Err(bad(format!(
                "entry {name} claims {size} bytes, more than its {} compressed bytes can hold",
                f.compressed_size()
            )));
        }
        // The declared size only sizes the first allocation when the archive can back it
        // (stored entries, what torch.save writes); a deflated entry grows as it inflates.
        let mut out = Vec::with_capacity(size.min(bytes.len() as u64) as usize);
        // One byte past the declared size tells an entry that inflates to more than it says.
        (&mut f)
            .take(size + 1)
            .read_to_end(&mut out)
            .map_err(|e| bad(format!("cannot read entry {name} ({e})")))?;
        if out.len() as u64 != size {
            return Err(bad(format!(
                "entry {name} holds {} bytes, its header says {size}",
                out.len()
            )));
        }
        Ok(out)
    };
    if let Ok(order) = read_entry(&format!("{prefix}byteorder")) {
        if order != b"little" {
            return Err(bad(format!(
                "the checkpoint's byte order is {:?}, only little-endian is supported",
                String::from_utf8_lossy(&order)
            )));
        }
    }
    let pickle = read_entry(&pkl)?;
    let mut u = Unpickler::new(&pickle, 0);
    let root = u.run()?;
    tensors(&root, |key| {
        read_entry(&format!("{prefix}data/{key}"))
            .map(std::borrow::Cow::Owned)
            .map_err(|e| bad(format!("storage `{key}`: {e}")))
    })
}

/// The state dict's tensors, each copied out of its storage's bytes.
fn tensors<'a>(
    root: &Value,
    mut storage: impl FnMut(&str) -> Result<std::borrow::Cow<'a, [u8]>>,
) -> Result<Vec<(String, Tensor)>> {
    let mut dict = root;
    let inner;
    if let Some(v @ Value::Dict(_)) = root.dict_get("state_dict") {
        inner = v;
        dict = &inner;
    }
    let Value::Dict(entries) = dict else {
        return Err(bad(format!(
            "the checkpoint holds a {}, not a state dict",
            dict.kind()
        )));
    };
    let mut cache: HashMap<String, std::borrow::Cow<'a, [u8]>> = HashMap::new();
    let mut out: Vec<(String, Tensor)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (k, v) in entries.borrow().items.iter() {
        let raw_name = k
            .as_str()
            .ok_or_else(|| bad("a state dict key is not a string"))?;
        let name = raw_name.strip_prefix("module.").unwrap_or(raw_name);
        let Value::Tensor(t) = v else {
            return Err(bad(format!(
                "entry `{raw_name}` is a {}, not a tensor",
                v.kind()
            )));
        };
        if name.ends_with("num_batches_tracked") {
            continue;
        }
        if t.storage.dtype != DType::F32 {
            return Err(Error::TensorDtype {
                name: name.to_string(),
                found: t.storage.dtype.name().to_string(),
            });
        }
        let numel: usize = t.shape.iter().product();
        if numel > 1 && !is_contiguous(&t.shape, &t.stride) {
            return Err(bad(format!(
                "tensor `{name}` is not contiguous (size {:?}, stride {:?}); save it with .contiguous()",
                t.shape, t.stride
            )));
        }
        let key = &t.storage.key;
        if !cache.contains_key(key) {
            let bytes = storage(key)?;
            cache.insert(key.clone(), bytes);
        }
        let bytes = &cache[key];
        let held = (bytes.len() / 4).min(t.storage.numel);
        // Checked: the offset and the size come from the file and may be anything.
        let end = t.offset.checked_add(numel).filter(|end| *end <= held);
        let Some(end) = end else {
            return Err(bad(format!(
                "tensor `{name}` reads elements {}..{} of a storage of {held} (truncated?)",
                t.offset,
                t.offset as u128 + numel as u128
            )));
        };
        let data = bytes[t.offset * 4..end * 4]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if !seen.insert(name) {
            return Err(bad(format!("tensor `{name}` appears twice")));
        }
        out.push((
            name.to_string(),
            Tensor {
                shape: t.shape.clone(),
                data,
            },
        ));
    }
    Ok(out)
}

/// Row-major strides; sizes of 1 may carry any stride.
fn is_contiguous(shape: &[usize], stride: &[usize]) -> bool {
    let mut expected = 1;
    for (s, st) in shape.iter().zip(stride).rev() {
        if *s != 1 && *st != expected {
            return false;
        }
        expected *= s;
    }
    true
}

/// The element types of torch's storage classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DType {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl DType {
    fn from_storage(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" => DType::F32,
            "DoubleStorage" => DType::F64,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ShortStorage" => DType::I16,
            "CharStorage" => DType::I8,
            // Untyped storages are bytes (torch.load reads them as uint8).
            "ByteStorage" | "UntypedStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            _ => return None,
        })
    }
    fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }
    /// safetensors' spelling.
    fn name(self) -> &'static str {
        match self {
            DType::F32 => "F32",
            DType::F64 => "F64",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::I64 => "I64",
            DType::I32 => "I32",
            DType::I16 => "I16",
            DType::I8 => "I8",
            DType::U8 => "U8",
            DType::Bool => "BOOL",
        }
    }
}

/// The only Python globals a state dict needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildParameter,
    Storage(DType),
}

impl Global {
    fn resolve(module: &str, name: &str) -> Result<Self> {
        match (module, name) {
            ("collections", "OrderedDict") => Ok(Global::OrderedDict),
            ("torch._utils", "_rebuild_tensor_v2") => Ok(Global::RebuildTensorV2),
            ("torch._utils", "_rebuild_parameter") => Ok(Global::RebuildParameter),
            ("torch" | "torch.storage", n) if DType::from_storage(n).is_some() => {
                Ok(Global::Storage(DType::from_storage(n).unwrap()))
            }
            _ => Err(Error::UnsafeCheckpoint {
                path: None,
                global: format!("{module}.{name}"),
            }),
        }
    }
}

#[derive(Debug)]
struct StorageRef {
    key: String,
    dtype: DType,
    numel: usize,
}

#[derive(Debug)]
struct TensorRef {
    storage: Rc<StorageRef>,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

/// A pickled value. Containers are shared (`Rc`) because the memo and the stack refer to the
/// same object, as in Python: `SETITEMS` on a memoised dict is seen through both.
#[derive(Clone, Debug)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An int too large for i64, as little-endian two's complement bytes (the magic number).
    BigInt(Vec<u8>),
    Str(Rc<str>),
    /// A value a state dict may carry but the reader never looks into (float, bytes).
    Opaque(&'static str),
    Tuple(Rc<Items>),
    List(Rc<RefCell<Items>>),
    Dict(Rc<RefCell<Dict>>),
    Global(Global),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
}

/// The values of a tuple or list. Dropping one takes its nested containers apart with a work
/// list instead of recursing: a few bytes of pickle per level (TUPLE1 repeated, or appends
/// through the memo) nest values a million deep, and dropping those recursively overflows the
/// stack.
#[derive(Debug, Default)]
struct Items(Vec<Value>);

impl std::ops::Deref for Items {
    type Target = Vec<Value>;
    fn deref(&self) -> &Vec<Value> {
        &self.0
    }
}

impl std::ops::DerefMut for Items {
    fn deref_mut(&mut self) -> &mut Vec<Value> {
        &mut self.0
    }
}

impl Drop for Items {
    fn drop(&mut self) {
        dismantle(std::mem::take(&mut self.0));
    }
}

/// A dict's items in insertion order, with an index of its string keys so that a repeated key
/// replaces its value in place (Python semantics) without scanning the items: a scan per key
/// made a pickle of many keys quadratic.
#[derive(Debug, Default)]
struct Dict {
    items: Vec<(Value, Value)>,
    by_key: HashMap<Rc<str>, usize>,
}

impl Dict {
    fn insert(&mut self, k: Value, v: Value) {
        if let Value::Str(s) = &k {
            if let Some(&i) = self.by_key.get(s) {
                self.items[i].1 = v;
                return;
            }
            self.by_key.insert(s.clone(), self.items.len());
        }
        self.items.push((k, v));
    }
}

impl Drop for Dict {
    fn drop(&mut self) {
        let items = std::mem::take(&mut self.items);
        dismantle(items.into_iter().flat_map(|(k, v)| [k, v]).collect());
    }
}

/// Drops `work` without recursing: a container whose last reference goes has its values moved
/// to the work list first, so its own drop finds it empty. (A container that holds itself
/// through the memo is never freed, which costs memory the file's size bounds, not a crash.)
fn dismantle(mut work: Vec<Value>) {
    while let Some(v) = work.pop() {
        match v {
            Value::Tuple(t) => {
                if let Ok(mut t) = Rc::try_unwrap(t) {
                    work.append(&mut t.0);
                }
            }
            Value::List(l) => {
                if let Ok(l) = Rc::try_unwrap(l) {
                    work.append(&mut l.into_inner().0);
                }
            }
            Value::Dict(d) => {
                if let Ok(d) = Rc::try_unwrap(d) {
                    let mut d = d.into_inner();
                    for (k, v) in std::mem::take(&mut d.items) {
                        work.push(k);
                        work.push(v);
                    }
                }
            }
            _ => {}
        }
    }
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Str(_) => "str",
            Value::Opaque(kind) => kind,
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "global",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
        }
    }
    fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    fn as_usize(&self) -> Option<usize> {
        match self {
            Value::Int(i) => usize::try_from(*i).ok(),
            _ => None,
        }
    }
    fn dict_get(&self, key: &str) -> Option<Value> {
        match self {
            Value::Dict(d) => {
                let d = d.borrow();
                d.by_key.get(key).map(|i| d.items[*i].1.clone())
            }
            _ => None,
        }
    }
    fn usize_tuple(&self, what: &str) -> Result<Vec<usize>> {
        match self {
            Value::Tuple(t) => t
                .iter()
                .map(Value::as_usize)
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad(format!("{what} holds a non-integer"))),
            v => Err(bad(format!("{what} is a {}, not a tuple", v.kind()))),
        }
    }
}

struct Unpickler<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    /// Stack lengths at each MARK.
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    /// Every storage the persistent ids named.
    storages: Storages,
}

impl<'a> Unpickler<'a> {
    fn new(data: &'a [u8], pos: usize) -> Self {
        Self {
            data,
            pos,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            storages: HashMap::new(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.data.len())
            .ok_or_else(|| {
                bad(format!(
                    "the pickle ends early (at byte {})",
                    self.data.len()
                ))
            })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn len_u64(&mut self) -> Result<usize> {
        let n = self.u64()?;
        usize::try_from(n).map_err(|_| bad("a length does not fit in memory"))
    }
    fn line(&mut self) -> Result<&'a str> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| bad("unterminated GLOBAL"))?;
        let s = std::str::from_utf8(&rest[..n]).map_err(|_| bad("GLOBAL name is not UTF-8"))?;
        self.pos += n + 1;
        Ok(s)
    }
    fn string(&mut self, n: usize) -> Result<Value> {
        let b = self.take(n)?;
        let s = std::str::from_utf8(b).map_err(|_| bad("a string is not valid UTF-8"))?;
        Ok(Value::Str(s.into()))
    }
    fn pop(&mut self) -> Result<Value> {
        if self.marks.last().is_some_and(|m| *m >= self.stack.len()) {
            return Err(bad("stack underflow past a MARK"));
        }
        self.stack.pop().ok_or_else(|| bad("stack underflow"))
    }
    fn top(&mut self) -> Result<&mut Value> {
        self.stack.last_mut().ok_or_else(|| bad("stack underflow"))
    }
    /// Everything pushed since the last MARK, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let m = self.marks.pop().ok_or_else(|| bad("no MARK"))?;
        if m > self.stack.len() {
            return Err(bad("MARK past the stack"));
        }
        Ok(self.stack.split_off(m))
    }
    fn memo_get(&self, i: u32) -> Result<Value> {
        self.memo
            .get(&i)
            .cloned()
            .ok_or_else(|| bad(format!("memo entry {i} used before it was set")))
    }
    fn memo_put(&mut self, i: u32) -> Result<()> {
        let v = self
            .stack
            .last()
            .cloned()
            .ok_or_else(|| bad("stack underflow"))?;
        self.memo.insert(i, v);
        Ok(())
    }

    fn set_items(dict: &Value, items: Vec<Value>) -> Result<()> {
        let Value::Dict(d) = dict else {
            return Err(bad(format!("SETITEM on a {}", dict.kind())));
        };
        if !items.len().is_multiple_of(2) {
            return Err(bad("SETITEMS with an odd number of values"));
        }
        let mut d = d.borrow_mut();
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            d.insert(k, v);
        }
        Ok(())
    }

    fn persistent_load(&mut self, pid: Value) -> Result<Value> {
        let Value::Tuple(t) = &pid else {
            return Err(bad(format!("persistent id is a {}", pid.kind())));
        };
        if t.len() < 5 || t[0].as_str() != Some("storage") {
            return Err(bad(
                "persistent id is not a ('storage', type, key, location, size) tuple",
            ));
        }
        let dtype = match &t[1] {
            Value::Global(Global::Storage(d)) => *d,
            v => return Err(bad(format!("storage type is a {}", v.kind()))),
        };
        let key = t[2]
            .as_str()
            .ok_or_else(|| bad("storage key is not a string"))?
            .to_string();
        let numel = t[4]
            .as_usize()
            .ok_or_else(|| bad("storage size is not an integer"))?;
        if t.len() > 5 && !matches!(t[5], Value::None) {
            return Err(bad(format!("storage `{key}` is a view of another storage (legacy view metadata is not supported)")));
        }
        let s = self
            .storages
            .entry(key.clone())
            .or_insert_with(|| {
                Rc::new(StorageRef {
                    key: key.clone(),
                    dtype,
                    numel,
                })
            })
            .clone();
        if s.dtype != dtype || s.numel != numel {
            return Err(bad(format!(
                "storage `{key}` is declared twice, differently"
            )));
        }
        Ok(Value::Storage(s))
    }

    fn reduce(&mut self, func: Value, args: Value) -> Result<Value> {
        let Value::Tuple(args) = args else {
            return Err(bad(format!("REDUCE arguments are a {}", args.kind())));
        };
        match func {
            Value::Global(Global::OrderedDict) => {
                let d = Value::Dict(Rc::default());
                match args.first() {
                    None => {}
                    Some(Value::List(items)) => {
                        let mut flat = Vec::new();
                        for item in items.borrow().iter() {
                            match item {
                                Value::Tuple(kv) if kv.len() == 2 => {
                                    flat.extend(kv.iter().cloned())
                                }
                                _ => {
                                    return Err(bad("OrderedDict() of something other than pairs"))
                                }
                            }
                        }
                        Self::set_items(&d, flat)?;
                    }
                    Some(v) => return Err(bad(format!("OrderedDict() of a {}", v.kind()))),
                }
                Ok(d)
            }
            Value::Global(Global::RebuildTensorV2) => {
                if args.len() < 4 {
                    return Err(bad("_rebuild_tensor_v2 with fewer than 4 arguments"));
                }
                let Value::Storage(storage) = &args[0] else {
                    return Err(bad(format!("_rebuild_tensor_v2 of a {}", args[0].kind())));
                };
                let offset = args[1]
                    .as_usize()
                    .ok_or_else(|| bad("tensor storage offset is not an integer"))?;
                let shape = args[2].usize_tuple("tensor size")?;
                let stride = args[3].usize_tuple("tensor stride")?;
                if shape.len() != stride.len() {
                    return Err(bad("tensor size and stride differ in length"));
                }
                shape
                    .iter()
                    .try_fold(1usize, |a, s| a.checked_mul(*s))
                    .ok_or_else(|| bad("tensor size overflows"))?;
                Ok(Value::Tensor(Rc::new(TensorRef {
                    storage: storage.clone(),
                    offset,
                    shape,
                    stride,
                })))
            }
            Value::Global(Global::RebuildParameter) => match args.first() {
                Some(t @ Value::Tensor(_)) => Ok(t.clone()),
                _ => Err(bad("_rebuild_parameter of something other than a tensor")),
            },
            Value::Global(g) => Err(bad(format!("a checkpoint does not call {g:?}"))),
            v => Err(bad(format!("REDUCE on a {}, not a global", v.kind()))),
        }
    }

    /// Runs to STOP and returns the pickled value.
    fn run(&mut self) -> Result<Value> {
        loop {
            let at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if proto > 5 {
                        return Err(bad(format!("pickle protocol {proto} is not supported")));
                    }
                }
                0x95 => {
                    self.u64()?; // FRAME: a length hint
                }
                b'.' => return self.pop(),
                b'(' => self.marks.push(self.stack.len()),
                b')' => self.stack.push(Value::Tuple(Rc::default())),
                b']' => self.stack.push(Value::List(Rc::default())),
                b'}' => self.stack.push(Value::Dict(Rc::default())),
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'J' => {
                    let v = self.u32()? as i32;
                    self.stack.push(Value::Int(v as i64))
                }
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(v as i64))
                }
                b'M' => {
                    let v = self.u16()?;
                    self.stack.push(Value::Int(v as i64))
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?;
                    let v = if n == 0 {
                        Value::Int(0)
                    } else if n <= 8 {
                        let neg = b[n - 1] & 0x80 != 0;
                        let mut buf = [if neg { 0xff } else { 0 }; 8];
                        buf[..n].copy_from_slice(b);
                        Value::Int(i64::from_le_bytes(buf))
                    } else {
                        Value::BigInt(b.to_vec())
                    };
                    self.stack.push(v)
                }
                b'G' => {
                    self.take(8)?;
                    self.stack.push(Value::Opaque("float"))
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let v = self.string(n)?;
                    self.stack.push(v)
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let v = self.string(n)?;
                    self.stack.push(v)
                }
                0x8d => {
                    let n = self.len_u64()?;
                    let v = self.string(n)?;
                    self.stack.push(v)
                }
                b'B' | b'C' | 0x8e => {
                    let n = match op {
                        b'B' => self.u32()? as usize,
                        b'C' => self.u8()? as usize,
                        _ => self.len_u64()?,
                    };
                    self.take(n)?;
                    self.stack.push(Value::Opaque("bytes"))
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(Rc::new(Items(items))))
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.stack.push(Value::Tuple(Rc::new(Items(items))))
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack
                        .push(Value::List(Rc::new(RefCell::new(Items(items)))))
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let d = Value::Dict(Rc::default());
                    Self::set_items(&d, items)?;
                    self.stack.push(d)
                }
                b'a' => {
                    let v = self.pop()?;
                    match self.top()? {
                        Value::List(l) => l.borrow_mut().push(v),
                        t => return Err(bad(format!("APPEND to a {}", t.kind()))),
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    match self.top()? {
                        Value::List(l) => l.borrow_mut().extend(items),
                        t => return Err(bad(format!("APPENDS to a {}", t.kind()))),
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let d = self.top()?.clone();
                    Self::set_items(&d, vec![k, v])?
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let d = self.top()?.clone();
                    Self::set_items(&d, items)?
                }
                b'q' => {
                    let i = self.u8()? as u32;
                    self.memo_put(i)?
                }
                b'r' => {
                    let i = self.u32()?;
                    self.memo_put(i)?
                }
                0x94 => {
                    let i = self.memo.len() as u32;
                    self.memo_put(i)?
                }
                b'h' => {
                    let i = self.u8()? as u32;
                    let v = self.memo_get(i)?;
                    self.stack.push(v)
                }
                b'j' => {
                    let i = self.u32()?;
                    let v = self.memo_get(i)?;
                    self.stack.push(v)
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let g = Global::resolve(module, name)?;
                    self.stack.push(Value::Global(g))
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module.as_str(), name.as_str()) {
                        (Some(m), Some(n)) => {
                            let g = Global::resolve(m, n)?;
                            self.stack.push(Value::Global(g))
                        }
                        _ => return Err(bad("STACK_GLOBAL of non-strings")),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent_load(pid)?;
                    self.stack.push(v)
                }
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let v = self.reduce(func, args)?;
                    self.stack.push(v)
                }
                b'b' => {
                    // The state dict's `_metadata` attribute (per-module versions) arrives as
                    // BUILD on the OrderedDict; the network does not need it.
                    let _state = self.pop()?;
                    match self.top()? {
                        Value::Dict(_) => {}
                        t => return Err(bad(format!("BUILD on a {}", t.kind()))),
                    }
                }
                b'0' => {
                    self.pop()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.stack.push(v)
                }
                b'1' => {
                    self.pop_mark()?;
                }
                _ => {
                    return Err(bad(format!(
                        "pickle opcode {:?} (0x{op:02x}) at byte {at} is not one a state dict uses",
                        op as char
                    )))
                }
            }
        }
    }
}

/// A checkpoint converted to safetensors: what `retinaface convert` writes.
#[derive(Clone, Debug)]
pub struct Converted {
    pub model: Model,
    /// Tensors written (without `num_batches_tracked`).
    pub tensors: usize,
    /// [`super::content_hash`] of the tensors, the same for the checkpoint and the output.
    pub content_hash: String,
    /// The safetensors file's bytes.
    pub safetensors: Vec<u8>,
}

/// Reads a checkpoint (a PyTorch `.pth`, or retina-face's Keras `.h5`), checks that it is a
/// complete RetinaFace state dict (every tensor the network needs, right shapes, finite
/// values), and serialises its float32 tensors, names normalised, to safetensors. `source` (e.g. the input file name) goes into the metadata.
pub fn convert(bytes: &[u8], source: Option<&str>) -> Result<Converted> {
    if super::h5::is_hdf5(bytes) {
        // retina-face's Keras weights: already named as its PyTorch port and in OIHW.
        return convert_tensors(&super::h5::read_f32(bytes)?, source);
    }
    convert_tensors(&read(bytes)?, source)
}

/// [`convert`] from file to file; the output is replaced atomically (temporary file and
/// rename), so a failed conversion leaves no partial file.
#[cfg(feature = "native")]
pub fn convert_file(input: &std::path::Path, output: &std::path::Path) -> Result<Converted> {
    let bytes = std::fs::read(input).map_err(|e| Error::WeightsFile {
        path: input.to_path_buf(),
        reason: e.to_string(),
    })?;
    let source = input.file_name().map(|n| n.to_string_lossy().into_owned());
    let c = convert(&bytes, source.as_deref()).map_err(|e| match e {
        Error::Checkpoint { reason, .. } => Error::Checkpoint {
            path: Some(input.to_path_buf()),
            reason,
        },
        Error::UnsafeCheckpoint { global, .. } => Error::UnsafeCheckpoint {
            path: Some(input.to_path_buf()),
            global,
        },
        Error::KerasWeights { reason, .. } => Error::KerasWeights {
            path: Some(input.to_path_buf()),
            reason,
        },
        other => other,
    })?;
    crate::fs_atomic::write_atomic(output, &c.safetensors)?;
    Ok(c)
}

/// [`convert`] for tensors already read with [`read`].
pub fn convert_tensors(tensors: &[(String, Tensor)], source: Option<&str>) -> Result<Converted> {
    let map = tensors
        .iter()
        .map(|(n, t)| (n.clone(), Ok(t.clone())))
        .collect();
    let model = super::weights::Weights::from_tensors(&map)?.model;
    let content_hash = super::content_hash::of_tensors(tensors);
    let data: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, t)| super::content_hash::f32_bytes(&t.data))
        .collect();
    let views = tensors
        .iter()
        .zip(&data)
        .map(|((name, t), d)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, t.shape.clone(), d)
                .map(|v| (name.clone(), v))
                .map_err(|e| bad(format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let arch = match model {
        Model::Mnet025 => "retinaface-mobilenet0.25",
        Model::Resnet50 => "retinaface-resnet50",
        Model::Net3 => "retinaface_r50_net3",
    };
    let mut meta = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("arch".to_string(), arch.to_string()),
        ("content_hash".to_string(), content_hash.clone()),
    ]);
    if let Some(s) = source {
        meta.insert("source".into(), s.to_string());
    }
    if model == Model::Net3 {
        // No weight file stores it; the network is wrong without it (spec §1).
        meta.insert("bn_eps".into(), "2e-05".into());
    }
    let safetensors = safetensors::serialize(views, Some(meta))
        .map_err(|e| bad(format!("cannot serialise to safetensors ({e})")))?;
    Ok(Converted {
        model,
        tensors: tensors.len(),
        content_hash,
        safetensors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safetensors_with_a_0x80_header_length_is_not_a_checkpoint() {
        let mut st = 384u64.to_le_bytes().to_vec();
        st.push(b'{');
        st.resize(8 + 384, b' ');
        assert_eq!(st[..2], [0x80, 0x01]);
        assert!(!is_checkpoint(&st));
        let legacy = [&b"\x80\x02\x8a\x0a"[..], &LEGACY_MAGIC.to_le_bytes()[..10]].concat();
        assert!(is_checkpoint(&legacy));
        assert!(is_checkpoint(b"PK\x03\x04rest"));
    }

    #[test]
    fn contiguity() {
        assert!(is_contiguous(&[8, 3, 3, 3], &[27, 9, 3, 1]));
        assert!(is_contiguous(&[8, 1, 1, 1], &[1, 1, 1, 1]));
        assert!(is_contiguous(&[], &[]));
        assert!(!is_contiguous(&[3, 4], &[1, 3]));
    }

    #[test]
    fn long1_sign_and_magic() {
        let p = |bytes: &[u8]| Unpickler::new(bytes, 0).run().unwrap();
        assert!(matches!(p(b"\x80\x02\x8a\x01\xff."), Value::Int(-1)));
        assert!(matches!(p(b"\x80\x02\x8a\x02\xe8\x03."), Value::Int(1000)));
        let magic = [
            &b"\x80\x02\x8a\x0a"[..],
            &LEGACY_MAGIC.to_le_bytes()[..10],
            b".",
        ]
        .concat();
        assert!(matches!(p(&magic), Value::BigInt(b) if b == LEGACY_MAGIC.to_le_bytes()[..10]));
    }

    #[test]
    fn memo_shares_containers() {
        // d = {}; memo[0] = d; d["a"] = 1; result = (memo[0],) sees the item.
        let v = Unpickler::new(b"\x80\x02}q\x00X\x01\x00\x00\x00aK\x01sh\x00\x85.", 0)
            .run()
            .unwrap();
        let Value::Tuple(t) = v else { panic!() };
        assert!(matches!(t[0].dict_get("a"), Some(Value::Int(1))));
    }

    #[test]
    fn refuses_code_before_calling_anything() {
        // cos\nsystem\n(S'echo pwned'\ntR.  -- the classic payload, protocol 0 spelling.
        let e = Unpickler::new(b"cos\nsystem\n(S'echo pwned'\ntR.", 0)
            .run()
            .unwrap_err();
        assert!(
            matches!(&e, Error::UnsafeCheckpoint { global, .. } if global == "os.system"),
            "{e}"
        );
        // builtins.eval through STACK_GLOBAL (protocol 4).
        let e = Unpickler::new(
            b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93\x8c\x041+1\x85R.",
            0,
        )
        .run()
        .unwrap_err();
        assert!(e.to_string().contains("builtins.eval"), "{e}");
        // An opcode that builds arbitrary objects (NEWOBJ) is refused by name.
        let e = Unpickler::new(b"\x80\x02\x81.", 0).run().unwrap_err();
        assert!(e.to_string().contains("0x81"), "{e}");
    }
}
