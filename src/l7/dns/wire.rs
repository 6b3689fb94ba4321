//! Checked reading of DNS wire format: a cursor that fails on missing data, and names with
//! compression pointers (RFC 1035 §4.1.4) assembled into a stack buffer.

/// Most labels in a name.
pub(super) const MAX_LABELS: usize = 128;
/// Longest name text (labels joined with `.`), in bytes. RFC 1035 caps names at 255 wire
/// bytes, but a sensor must read what a malicious sender writes, so the cap is looser.
pub(super) const MAX_NAME: usize = 1024;
/// Most compression pointers followed in one name (each must point strictly backwards, so
/// this only bounds the work).
const MAX_HOPS: usize = 64;

/// The bytes are not a well-formed DNS message (missing data, bad label, pointer loop, too
/// long a name). Whose fault: the sender's; the caller scans the bytes raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Malformed;

/// Cursor over untrusted bytes.
#[derive(Debug)]
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    /// Invariant: `pos <= buf.len()`.
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// A cursor at `pos` (clamped to the end).
    pub(super) fn at(buf: &'a [u8], pos: usize) -> Reader<'a> {
        Reader {
            buf,
            pos: pos.min(buf.len()),
        }
    }

    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    pub(super) fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }

    pub(super) fn bytes(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(Malformed)?;
        let b = &self.buf[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    pub(super) fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.bytes(1)?[0])
    }

    pub(super) fn u16(&mut self) -> Result<u16, Malformed> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(super) fn u32(&mut self) -> Result<u32, Malformed> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a (possibly compressed) name into `name`; the cursor ends after the name's bytes
    /// at this position (after the first pointer, if any).
    pub(super) fn name(&mut self, name: &mut Name) -> Result<(), Malformed> {
        name.clear();
        let mut pos = self.pos;
        let mut end = None; // where the cursor resumes once a pointer was followed
        let mut hops = 0;
        loop {
            let len = *self.buf.get(pos).ok_or(Malformed)?;
            match len >> 6 {
                0 if len == 0 => {
                    self.pos = end.unwrap_or(pos + 1);
                    return Ok(());
                }
                0 => {
                    let label = self.buf.get(pos + 1..pos + 1 + usize::from(len)).ok_or(Malformed)?;
                    name.push(label)?;
                    pos += 1 + usize::from(len);
                }
                3 => {
                    let low = *self.buf.get(pos + 1).ok_or(Malformed)?;
                    let target = usize::from(len & 0x3f) << 8 | usize::from(low);
                    // Strictly backwards: no loop is possible, whatever the bytes say.
                    hops += 1;
                    if target >= pos || hops > MAX_HOPS {
                        return Err(Malformed);
                    }
                    end.get_or_insert(pos + 2);
                    pos = target;
                }
                // 01 and 10 are reserved (the old extended label types).
                _ => return Err(Malformed),
            }
        }
    }
}

/// A name being read: its text (labels joined with `.`) and where each label lies in it.
#[derive(Debug)]
pub(super) struct Name {
    /// Invariant: `len <= MAX_NAME`.
    text: [u8; MAX_NAME],
    len: usize,
    /// (offset in `text`, length) of each label. Invariant: `count <= MAX_LABELS`.
    labels: [(u16, u8); MAX_LABELS],
    count: usize,
}

impl Name {
    pub(super) fn new() -> Name {
        Name {
            text: [0; MAX_NAME],
            len: 0,
            labels: [(0, 0); MAX_LABELS],
            count: 0,
        }
    }

    fn clear(&mut self) {
        self.len = 0;
        self.count = 0;
    }

    fn push(&mut self, label: &[u8]) -> Result<(), Malformed> {
        let dot = usize::from(self.count > 0);
        if self.count == MAX_LABELS || self.len + dot + label.len() > MAX_NAME {
            return Err(Malformed);
        }
        if dot == 1 {
            self.text[self.len] = b'.';
            self.len += 1;
        }
        self.labels[self.count] = (self.len as u16, label.len() as u8);
        self.count += 1;
        self.text[self.len..self.len + label.len()].copy_from_slice(label);
        self.len += label.len();
        Ok(())
    }

    /// The labels joined with `.` (empty for the root).
    pub(super) fn text(&self) -> &[u8] {
        &self.text[..self.len]
    }

    /// Where each label lies in [`Name::text`].
    pub(super) fn labels(&self) -> &[(u16, u8)] {
        &self.labels[..self.count]
    }

    /// The bytes of one label from [`Name::labels`].
    pub(super) fn label(&self, (start, len): (u16, u8)) -> &[u8] {
        &self.text[usize::from(start)..usize::from(start) + usize::from(len)]
    }
}
