//! Streaming reader of XEP-0227 files: hands over one `<user/>` element at a time, as a DOM
//! with the line of every element, so a file of any size is never held in memory at once.
//!
//! Follows XEP-0227 §5 XInclude: an `<xi:include href='relative/path'/>` (no `parse` other
//! than "xml", no `xpointer`) in `<server-data/>` includes a file whose root is `<host/>`, and
//! one in `<host/>` a file whose root is `<user/>`, as ejabberd's `export_piefxis` writes
//! them. Paths are relative to the including file and may not leave its directory tree.
//!
//! rxml refuses DTDs, entity declarations, processing instructions and comments, so a file
//! cannot make us expand entities or fetch anything else.

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use minidom::Element;
use rxml::error::EndOrError;
use rxml::{Event, Parse, Parser};

use super::{FileError, NS_PIE, NS_PIE_OLD, NS_XINCLUDE};

/// Bytes read from the file per call.
const CHUNK: usize = 64 * 1024;

/// Bounds on what a file may make us hold or follow.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// Bytes one `<user/>` element may take.
    pub max_user_bytes: usize,
    /// Element nesting inside a `<user/>`.
    pub max_depth: usize,
    /// Nested XIncludes (main file → host file → user file is 2).
    pub max_include_depth: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_user_bytes: 64 * 1024 * 1024,
            max_depth: 64,
            max_include_depth: 4,
        }
    }
}

/// The line of an element and of its child elements, in document order (parallel to
/// `Element::children()`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lines {
    pub line: u32,
    pub children: Vec<Lines>,
}

/// One `<user/>` element read from a file.
#[derive(Debug, Clone)]
pub struct RawUser {
    /// The 'jid' of the enclosing `<host/>`.
    pub host: String,
    pub element: Element,
    pub lines: Lines,
    /// The file it came from, as named to the user.
    pub file: Arc<str>,
}

/// What the root of a file must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    ServerData,
    Host,
    User,
}

impl Root {
    fn name(self) -> &'static str {
        match self {
            Root::ServerData => "server-data",
            Root::Host => "host",
            Root::User => "user",
        }
    }
}

/// Where the parser is, outside `<user/>` elements.
enum Frame {
    ServerData,
    Host,
    /// An `<xi:include/>`: processed at its end tag.
    Include {
        href: String,
        line: u32,
    },
    /// Inside an element of a foreign namespace, ignored (XEP-0227 §4).
    Skip,
}

/// Reads the file at `path` (root `<server-data/>`), calling `on_user` for every user in
/// document order. Stops at the first error (of the file or of `on_user`).
pub fn read_path(
    path: &Path,
    limits: ReadLimits,
    on_user: &mut dyn FnMut(RawUser) -> Result<(), FileError>,
) -> Result<(), FileError> {
    read_file(path, Root::ServerData, None, 0, limits, on_user)
}

/// As [`read_path`] for an already open stream (standard input); includes are resolved
/// against the current directory.
pub fn read_stream(
    name: &str,
    stream: &mut dyn Read,
    limits: ReadLimits,
    on_user: &mut dyn FnMut(RawUser) -> Result<(), FileError>,
) -> Result<(), FileError> {
    let mut state = FileState::new(name.into(), PathBuf::from("."), Root::ServerData, None, 0, limits);
    state.run(stream, on_user)
}

fn read_file(
    path: &Path,
    root: Root,
    host: Option<String>,
    include_depth: usize,
    limits: ReadLimits,
    on_user: &mut dyn FnMut(RawUser) -> Result<(), FileError>,
) -> Result<(), FileError> {
    let name: Arc<str> = path.display().to_string().into();
    let mut file =
        std::fs::File::open(path).map_err(|e| FileError::new(&name, 0, format!("cannot open: {e}")))?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut state = FileState::new(name, dir, root, host, include_depth, limits);
    state.run(&mut file, on_user)
}

struct FileState {
    file: Arc<str>,
    /// Directory includes are resolved against.
    dir: PathBuf,
    root: Root,
    limits: ReadLimits,
    include_depth: usize,
    /// The enclosing host's JID, once known.
    host: Option<String>,
    /// Line of the next byte to parse (1-based).
    line: u32,
    frames: Vec<Frame>,
    /// Whether the root element was opened (and, with `frames` empty again, closed).
    root_seen: bool,
    /// The `<user/>` being built: open elements and their lines.
    user: Vec<(Element, Lines)>,
    user_bytes: usize,
}

impl FileState {
    fn new(
        file: Arc<str>,
        dir: PathBuf,
        root: Root,
        host: Option<String>,
        include_depth: usize,
        limits: ReadLimits,
    ) -> FileState {
        FileState {
            file,
            dir,
            root,
            limits,
            include_depth,
            host,
            line: 1,
            frames: Vec::new(),
            root_seen: false,
            user: Vec::new(),
            user_bytes: 0,
        }
    }

    fn err(&self, line: u32, reason: impl Into<String>) -> FileError {
        FileError::new(&self.file, line, reason)
    }

    fn run(
        &mut self,
        input: &mut dyn Read,
        on_user: &mut dyn FnMut(RawUser) -> Result<(), FileError>,
    ) -> Result<(), FileError> {
        let mut parser = Parser::new();
        let mut buf = vec![0u8; CHUNK];
        let mut eof = false;
        let mut pending: Vec<u8> = Vec::new();
        loop {
            if !eof {
                let n = input
                    .read(&mut buf)
                    .map_err(|e| self.err(self.line, format!("read error: {e}")))?;
                eof = n == 0;
                pending.extend_from_slice(&buf[..n]);
            }
            let mut data: &[u8] = &pending;
            loop {
                let before = data;
                let result = parser.parse(&mut data, eof);
                let consumed = &before[..before.len() - data.len()];
                // An event's line is that of its first markup byte.
                let start_line =
                    self.line + newlines(&consumed[..consumed.iter().position(|&b| b == b'<').unwrap_or(0)]);
                self.line += newlines(consumed);
                if !self.user.is_empty() {
                    self.user_bytes += consumed.len();
                    if self.user_bytes > self.limits.max_user_bytes {
                        return Err(self.err(
                            start_line,
                            format!("<user/> element larger than {} bytes", self.limits.max_user_bytes),
                        ));
                    }
                }
                match result {
                    Ok(Some(ev)) => self.handle(ev, start_line, on_user)?,
                    Ok(None) => {
                        if !self.root_seen {
                            return Err(self.err(self.line, "the file is empty"));
                        }
                        return Ok(());
                    }
                    Err(EndOrError::NeedMoreData) => break,
                    Err(EndOrError::Error(e)) => {
                        let reason = if eof && !self.root_seen {
                            "the file is empty (no root element)".to_owned()
                        } else if eof && matches!(e, rxml::Error::InvalidEof(_)) {
                            format!("the file ends early ({e})")
                        } else {
                            format!("not well-formed XML: {e}")
                        };
                        return Err(self.err(self.line, reason));
                    }
                }
            }
            let used = pending.len() - data.len();
            pending.drain(..used);
            if eof && pending.is_empty() && !self.frames.is_empty() {
                return Err(self.err(self.line, "the file ends early"));
            }
        }
    }

    fn handle(
        &mut self,
        ev: Event,
        line: u32,
        on_user: &mut dyn FnMut(RawUser) -> Result<(), FileError>,
    ) -> Result<(), FileError> {
        match ev {
            Event::XmlDeclaration(..) => Ok(()),
            Event::StartElement(_, (ns, name), attrs) => {
                let mut el = Element::builder(name.as_str(), ns.as_str()).build();
                *el.attrs_mut() = attrs;
                self.start(el, line)
            }
            Event::EndElement(_) => self.end(line, on_user),
            Event::Text(_, text) => {
                if let Some((top, _)) = self.user.last_mut() {
                    top.append_text(text);
                    Ok(())
                } else if text.trim().is_empty() || matches!(self.frames.last(), Some(Frame::Skip)) {
                    Ok(())
                } else {
                    Err(self.err(line, "text is not allowed here"))
                }
            }
        }
    }

    fn start(&mut self, el: Element, line: u32) -> Result<(), FileError> {
        if !self.user.is_empty() {
            if self.user.len() >= self.limits.max_depth {
                return Err(self.err(line, "elements nested too deeply"));
            }
            self.user.push((
                el,
                Lines {
                    line,
                    children: Vec::new(),
                },
            ));
            return Ok(());
        }
        let is_pie = el.ns() == NS_PIE || el.ns() == NS_PIE_OLD;
        let Some(parent) = self.frames.last() else {
            if self.root_seen {
                return Err(self.err(line, "content after the root element"));
            }
            self.root_seen = true;
            if !is_pie || el.name() != self.root.name() {
                return Err(self.err(
                    line,
                    format!(
                        "the root element must be <{}/> in namespace '{NS_PIE}', not <{}/> in '{}'",
                        self.root.name(),
                        el.name(),
                        el.ns()
                    ),
                ));
            }
            return match self.root {
                Root::ServerData => {
                    self.frames.push(Frame::ServerData);
                    Ok(())
                }
                Root::Host => self.open_host(&el, line),
                // Built in `user` until its end tag; no frame.
                Root::User => {
                    self.begin_user(el, line);
                    Ok(())
                }
            };
        };
        let is_include = el.is("include", NS_XINCLUDE);
        match parent {
            Frame::Skip => {
                self.frames.push(Frame::Skip);
                Ok(())
            }
            Frame::Include { .. } => {
                Err(self.err(line, "<xi:include/> children (fallbacks) are not supported"))
            }
            Frame::ServerData | Frame::Host if is_include => self.open_include(&el, line),
            Frame::ServerData if is_pie && el.name() == "host" => self.open_host(&el, line),
            Frame::Host if is_pie && el.name() == "user" => {
                self.begin_user(el, line);
                Ok(())
            }
            Frame::ServerData | Frame::Host if is_pie => Err(self.err(
                line,
                format!(
                    "unexpected <{}/> in <{}/>",
                    el.name(),
                    if matches!(parent, Frame::Host) {
                        "host"
                    } else {
                        "server-data"
                    }
                ),
            )),
            // Another namespace: an extension we do not know, ignored (XEP-0227 §4).
            Frame::ServerData | Frame::Host => {
                self.frames.push(Frame::Skip);
                Ok(())
            }
        }
    }

    fn open_host(&mut self, el: &Element, line: u32) -> Result<(), FileError> {
        let jid = el
            .attr("jid")
            .ok_or_else(|| self.err(line, "<host/> without a 'jid' attribute"))?;
        self.host = Some(jid.to_owned());
        self.frames.push(Frame::Host);
        Ok(())
    }

    fn open_include(&mut self, el: &Element, line: u32) -> Result<(), FileError> {
        let href = el
            .attr("href")
            .ok_or_else(|| self.err(line, "<xi:include/> without an 'href' attribute"))?;
        if el.attr("parse").is_some_and(|p| p != "xml") {
            return Err(self.err(line, "only parse='xml' includes are supported"));
        }
        if el.attr("xpointer").is_some() {
            return Err(self.err(line, "includes with an 'xpointer' are not supported"));
        }
        self.frames.push(Frame::Include {
            href: href.to_owned(),
            line,
        });
        Ok(())
    }

    fn begin_user(&mut self, el: Element, line: u32) {
        self.user_bytes = 0;
        self.user.push((
            el,
            Lines {
                line,
                children: Vec::new(),
            },
        ));
    }

    fn end(
        &mut self,
        line: u32,
        on_user: &mut dyn FnMut(RawUser) -> Result<(), FileError>,
    ) -> Result<(), FileError> {
        if let Some((el, lines)) = self.user.pop() {
            match self.user.last_mut() {
                Some((parent, parent_lines)) => {
                    parent.append_child(el);
                    parent_lines.children.push(lines);
                }
                None => {
                    let host = self
                        .host
                        .clone()
                        .ok_or_else(|| self.err(lines.line, "<user/> outside of a <host/>"))?;
                    on_user(RawUser {
                        host,
                        element: el,
                        lines,
                        file: self.file.clone(),
                    })?;
                }
            }
            return Ok(());
        }
        match self.frames.pop() {
            Some(Frame::Include { href, line: at }) => {
                let root = match self.frames.last() {
                    Some(Frame::Host) => Root::User,
                    _ => Root::Host,
                };
                let path = self.resolve(&href, at)?;
                if self.include_depth >= self.limits.max_include_depth {
                    return Err(self.err(at, "includes nested too deeply"));
                }
                let host = if root == Root::User {
                    self.host.clone()
                } else {
                    None
                };
                read_file(&path, root, host, self.include_depth + 1, self.limits, on_user)
            }
            Some(Frame::Host) if self.root == Root::ServerData => {
                self.host = None;
                Ok(())
            }
            Some(_) => Ok(()),
            None => Err(self.err(line, "unbalanced end tag")),
        }
    }

    /// The included file: a relative path below the including file's directory.
    fn resolve(&self, href: &str, line: u32) -> Result<PathBuf, FileError> {
        let href = href.strip_prefix("file:").unwrap_or(href);
        let rel = Path::new(href);
        let plain = !href.is_empty()
            && !href.contains("://")
            && rel
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !plain {
            return Err(self.err(
                line,
                format!("include '{href}' must be a relative path below the including file"),
            ));
        }
        Ok(self.dir.join(rel))
    }
}

fn newlines(bytes: &[u8]) -> u32 {
    u32::try_from(bytes.iter().filter(|&&b| b == b'\n').count()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(xml: &str) -> Result<Vec<RawUser>, FileError> {
        let mut out = Vec::new();
        read_stream("test.xml", &mut xml.as_bytes(), ReadLimits::default(), &mut |u| {
            out.push(u);
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn xep0227_4_users_come_out_with_their_host_and_lines() {
        let xml = "<?xml version='1.0' encoding='UTF-8'?>\n\
            <server-data xmlns='urn:xmpp:pie:0'>\n\
              <host jid='capulet.lit'>\n\
                <user name='juliet' password='s3crEt'>\n\
                  <query xmlns='jabber:iq:roster'>\n\
                    <item jid='romeo@montague.lit'><group>Friends</group></item>\n\
                  </query>\n\
                </user>\n\
              </host>\n\
              <host jid='montague.lit'><user name='romeo'/></host>\n\
            </server-data>\n";
        let u = users(xml).unwrap();
        assert_eq!(u.len(), 2);
        assert_eq!(u[0].host, "capulet.lit");
        assert_eq!(u[0].element.attr("name"), Some("juliet"));
        assert_eq!(u[0].lines.line, 4);
        assert_eq!(u[0].lines.children[0].line, 5);
        assert_eq!(u[0].lines.children[0].children[0].line, 6);
        assert_eq!(u[1].host, "montague.lit");
        assert_eq!(u[1].lines.line, 10);
    }

    #[test]
    fn xep0227_4_old_namespace_and_foreign_elements_are_accepted() {
        let xml = "<server-data xmlns='http://www.xmpp.org/extensions/xep-0227.html#ns'>\
            <x xmlns='urn:example'><host jid='no'/>text</x>\
            <host jid='a.lit'><user name='u'/></host></server-data>";
        assert_eq!(users(xml).unwrap().len(), 1);
    }

    #[test]
    fn malformed_files_report_the_line() {
        let e = users("<server-data xmlns='urn:xmpp:pie:0'>\n<host jid='a'>\n<user name='x'>\n</host>")
            .unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        let e = users("<server-data xmlns='urn:xmpp:pie:0'>\n<host>\n</host></server-data>").unwrap_err();
        assert_eq!(
            (e.line, e.reason.as_str()),
            (2, "<host/> without a 'jid' attribute")
        );
        let e = users("<server-data xmlns='urn:wrong'/>").unwrap_err();
        assert_eq!(e.line, 1);
        let e = users("<server-data xmlns='urn:xmpp:pie:0'>\n<host jid='a'>\n<user name='x'/>").unwrap_err();
        assert!(e.reason.contains("ends early"), "{e}");
        let e = users("<!DOCTYPE x [<!ENTITY a 'b'>]><server-data xmlns='urn:xmpp:pie:0'/>").unwrap_err();
        assert!(e.reason.contains("not well-formed"), "{e}");
        let e = users("").unwrap_err();
        assert!(e.reason.contains("empty"), "{e}");
    }

    #[test]
    fn xep0227_5_includes_are_followed_below_the_directory_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a.lit")).unwrap();
        std::fs::write(
            dir.path().join("main.xml"),
            "<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'>\
             <xi:include href='a.lit.xml'/></server-data>",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("a.lit.xml"),
            "<host xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude' jid='a.lit'>\
             <xi:include href='a.lit/juliet.xml'/><user name='romeo'/></host>",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("a.lit/juliet.xml"),
            "<user xmlns='urn:xmpp:pie:0' name='juliet'/>",
        )
        .unwrap();
        let mut names = Vec::new();
        read_path(&dir.path().join("main.xml"), ReadLimits::default(), &mut |u| {
            names.push((u.host, u.element.attr("name").unwrap().to_owned()));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            names,
            [
                ("a.lit".into(), "juliet".into()),
                ("a.lit".into(), "romeo".into())
            ]
        );
        let e = users(
            "<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'>\
             <xi:include href='../etc/passwd'/></server-data>",
        )
        .unwrap_err();
        assert!(e.reason.contains("relative path"), "{e}");
    }

    #[test]
    fn oversized_users_are_refused() {
        let limits = ReadLimits {
            max_user_bytes: 100,
            ..ReadLimits::default()
        };
        let xml = format!(
            "<server-data xmlns='urn:xmpp:pie:0'><host jid='a'><user name='x'><vCard xmlns='vcard-temp'>{}</vCard></user></host></server-data>",
            "y".repeat(500)
        );
        let e = read_stream("t", &mut xml.as_bytes(), limits, &mut |_| Ok(())).unwrap_err();
        assert!(e.reason.contains("larger"), "{e}");
    }
}
