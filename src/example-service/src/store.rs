//! The bookstore's in-memory data (`example-service serve --stateful`, what `make demo` runs).
//!
//! Without it every answer is a pure function of the request, which the differential
//! tests need (native and Wasm Envoys in front of backends that must answer alike).
//! With it, shelves and books created, updated and deleted through the proxy stay
//! that way, so the README's walkthrough is a real round trip. The limits keep a
//! demo left running from growing without bound whatever clients send.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use prost::Message;
use tonic::Code;

use crate::bookstore::v1 as bs;

/// At most this many shelves (the two seeded ones included).
pub const MAX_SHELVES: usize = 100;
/// At most this many books per shelf.
pub const MAX_BOOKS_PER_SHELF: usize = 100;
/// The largest shelf or book kept, encoded: with the counts above, at most about 160 MB.
pub const MAX_ENTRY_BYTES: usize = 16 * 1024;

/// 1965-08-01T00:00:00Z and 2015-10-20T00:00:00Z, the seeded books' publication dates.
const DUNE_PUBLISHED: i64 = -139_449_600;
const SPQR_PUBLISHED: i64 = 1_445_299_200;

/// A failed store operation: the gRPC code and message the handler answers with.
pub type Failure = (Code, String);

#[derive(Debug)]
struct ShelfEntry {
    shelf: bs::Shelf,
    books: BTreeMap<i64, bs::Book>,
    next_book: i64,
}

#[derive(Debug)]
struct Data {
    shelves: BTreeMap<i64, ShelfEntry>,
    /// Ids are never reused, as in a real store: a deleted shelf stays gone.
    next_shelf: i64,
}

/// Shelves and their books, shared by all connections (one lock, held only while copying).
#[derive(Debug)]
pub struct Store(Mutex<Data>);

impl Default for Store {
    fn default() -> Self {
        Store::seeded()
    }
}

fn not_found_shelf(id: i64) -> Failure {
    (Code::NotFound, format!("shelf {id} not found"))
}

fn not_found_book(name: &str) -> Failure {
    (Code::NotFound, format!("book {name} not found"))
}

fn too_large(what: &str, len: usize) -> Failure {
    (Code::InvalidArgument, format!("{what} is {len} bytes encoded; the example store keeps at most {MAX_ENTRY_BYTES}"))
}

/// `shelves/{shelf}/books/{book}` with both ids decimal integers.
fn parse_book_name(name: &str) -> Option<(i64, i64)> {
    let rest = name.strip_prefix("shelves/")?;
    let (shelf, book) = rest.split_once("/books/")?;
    let decimal = |s: &str| if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() { s.parse().ok() } else { None };
    Some((decimal(shelf)?, decimal(book)?))
}

fn book_name(shelf: i64, book: i64) -> String {
    format!("shelves/{shelf}/books/{book}")
}

impl Store {
    /// Two shelves, one book on each: something to list before anything was created.
    pub fn seeded() -> Store {
        let dune = bs::Book {
            name: book_name(1, 1),
            title: "Dune".to_owned(),
            author: Some(bs::Author { name: "Frank Herbert".to_owned(), born: 1920 }),
            genre: bs::Genre::Fiction as i32,
            tags: vec!["classic".to_owned()],
            published: Some(prost_types::Timestamp { seconds: DUNE_PUBLISHED, nanos: 0 }),
            pages: 412,
        };
        let spqr = bs::Book {
            name: book_name(2, 1),
            title: "SPQR".to_owned(),
            author: Some(bs::Author { name: "Mary Beard".to_owned(), born: 1955 }),
            genre: bs::Genre::History as i32,
            tags: vec!["rome".to_owned()],
            published: Some(prost_types::Timestamp { seconds: SPQR_PUBLISHED, nanos: 0 }),
            pages: 608,
        };
        let entry = |id: i64, theme: &str, book: bs::Book| {
            (
                id,
                ShelfEntry {
                    shelf: bs::Shelf { id, theme: theme.to_owned() },
                    books: BTreeMap::from([(1, book)]),
                    next_book: 2,
                },
            )
        };
        Store(Mutex::new(Data {
            shelves: BTreeMap::from([entry(1, "Fiction", dune), entry(2, "History", spqr)]),
            next_shelf: 3,
        }))
    }

    fn data(&self) -> MutexGuard<'_, Data> {
        // Nothing panics while holding the lock; should it ever, the data is still consistent
        // (every change is a single insert or remove), so keep serving.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn list_shelves(&self) -> Vec<bs::Shelf> {
        self.data().shelves.values().map(|e| e.shelf.clone()).collect()
    }

    /// A shelf with id 0 gets the next free id; any other id must not be taken.
    pub fn create_shelf(&self, mut shelf: bs::Shelf) -> Result<bs::Shelf, Failure> {
        if shelf.encoded_len() > MAX_ENTRY_BYTES {
            return Err(too_large("the shelf", shelf.encoded_len()));
        }
        if shelf.id < 0 {
            return Err((Code::InvalidArgument, format!("shelf id {} is negative", shelf.id)));
        }
        let mut data = self.data();
        if data.shelves.len() >= MAX_SHELVES {
            return Err((Code::ResourceExhausted, format!("the example store holds at most {MAX_SHELVES} shelves")));
        }
        if shelf.id == 0 {
            shelf.id = data.next_shelf;
        } else if data.shelves.contains_key(&shelf.id) {
            return Err((Code::AlreadyExists, format!("shelf {} already exists", shelf.id)));
        }
        data.next_shelf = data.next_shelf.max(shelf.id.saturating_add(1));
        data.shelves.insert(shelf.id, ShelfEntry { shelf: shelf.clone(), books: BTreeMap::new(), next_book: 1 });
        Ok(shelf)
    }

    pub fn get_shelf(&self, id: i64) -> Result<bs::Shelf, Failure> {
        self.data().shelves.get(&id).map(|e| e.shelf.clone()).ok_or_else(|| not_found_shelf(id))
    }

    /// Removes the shelf and every book on it.
    pub fn delete_shelf(&self, id: i64) -> Result<(), Failure> {
        self.data().shelves.remove(&id).map(|_| ()).ok_or_else(|| not_found_shelf(id))
    }

    /// The shelf's books in id order, at most `page_size` of them when it is positive.
    pub fn list_books(&self, shelf: i64, page_size: i32) -> Result<Vec<bs::Book>, Failure> {
        let data = self.data();
        let entry = data.shelves.get(&shelf).ok_or_else(|| not_found_shelf(shelf))?;
        let limit = if page_size > 0 { page_size as usize } else { usize::MAX };
        Ok(entry.books.values().take(limit).cloned().collect())
    }

    /// The store names the book (`shelves/{shelf}/books/{next id}`), whatever name it was sent with.
    pub fn create_book(&self, shelf: i64, mut book: bs::Book) -> Result<bs::Book, Failure> {
        let mut data = self.data();
        let entry = data.shelves.get_mut(&shelf).ok_or_else(|| not_found_shelf(shelf))?;
        if entry.books.len() >= MAX_BOOKS_PER_SHELF {
            return Err((
                Code::ResourceExhausted,
                format!("shelf {shelf} is full: the example store holds at most {MAX_BOOKS_PER_SHELF} books per shelf"),
            ));
        }
        let id = entry.next_book;
        book.name = book_name(shelf, id);
        if book.encoded_len() > MAX_ENTRY_BYTES {
            return Err(too_large("the book", book.encoded_len()));
        }
        entry.next_book += 1;
        entry.books.insert(id, book.clone());
        Ok(book)
    }

    pub fn get_book(&self, name: &str) -> Result<bs::Book, Failure> {
        let (shelf, id) = parse_book_name(name).ok_or_else(|| not_found_book(name))?;
        self.data().shelves.get(&shelf).and_then(|e| e.books.get(&id)).cloned().ok_or_else(|| not_found_book(name))
    }

    /// Sets the fields the mask names (`title`, `author`, `author.name`, `author.born`, `genre`,
    /// `tags`, `published`, `pages`); without a mask, every field but the name.
    pub fn update_book(&self, update: bs::Book, mask: &[String]) -> Result<bs::Book, Failure> {
        let (shelf, id) = parse_book_name(&update.name).ok_or_else(|| not_found_book(&update.name))?;
        let mut data = self.data();
        let stored = data
            .shelves
            .get_mut(&shelf)
            .and_then(|e| e.books.get_mut(&id))
            .ok_or_else(|| not_found_book(&update.name))?;
        let mut book = stored.clone();
        if mask.is_empty() {
            book = bs::Book { name: book.name, ..update };
        } else {
            for path in mask {
                match path.as_str() {
                    "title" => book.title = update.title.clone(),
                    "author" => book.author = update.author.clone(),
                    "author.name" => {
                        book.author.get_or_insert_with(Default::default).name =
                            update.author.as_ref().map(|a| a.name.clone()).unwrap_or_default()
                    }
                    "author.born" => {
                        book.author.get_or_insert_with(Default::default).born =
                            update.author.as_ref().map(|a| a.born).unwrap_or_default()
                    }
                    "genre" => book.genre = update.genre,
                    "tags" => book.tags = update.tags.clone(),
                    "published" => book.published = update.published,
                    "pages" => book.pages = update.pages,
                    "name" => {
                        return Err((Code::InvalidArgument, "update_mask: a book's name cannot change".to_owned()))
                    }
                    other => {
                        return Err((Code::InvalidArgument, format!("update_mask: unknown field `{other}` of Book")))
                    }
                }
            }
        }
        if book.encoded_len() > MAX_ENTRY_BYTES {
            return Err(too_large("the book", book.encoded_len()));
        }
        *stored = book.clone();
        Ok(book)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let store = Store::seeded();
        assert_eq!(store.list_shelves().iter().map(|s| s.id).collect::<Vec<_>>(), [1, 2]);
        let shelf = store.create_shelf(bs::Shelf { id: 0, theme: "Poetry".into() }).unwrap();
        assert_eq!(shelf.id, 3);
        let book = store.create_book(3, bs::Book { name: "ignored".into(), title: "T".into(), ..Default::default() });
        assert_eq!(book.unwrap().name, "shelves/3/books/1");
        let update = bs::Book { name: "shelves/3/books/1".into(), title: "U".into(), pages: 9, ..Default::default() };
        let updated = store.update_book(update, &["pages".to_owned()]).unwrap();
        assert_eq!((updated.title.as_str(), updated.pages), ("T", 9));
        assert_eq!(store.get_book("shelves/3/books/1").unwrap(), updated);
        store.delete_shelf(3).unwrap();
        assert_eq!(store.get_shelf(3).unwrap_err(), not_found_shelf(3));
        assert_eq!(store.get_book("shelves/3/books/1").unwrap_err().0, Code::NotFound);
        // A deleted id is not handed out again.
        assert_eq!(store.create_shelf(bs::Shelf::default()).unwrap().id, 4);
    }

    #[test]
    fn bounded() {
        let store = Store::seeded();
        for _ in 2..MAX_SHELVES {
            store.create_shelf(bs::Shelf::default()).unwrap();
        }
        assert_eq!(store.create_shelf(bs::Shelf::default()).unwrap_err().0, Code::ResourceExhausted);
        for _ in 1..MAX_BOOKS_PER_SHELF {
            store.create_book(1, bs::Book::default()).unwrap();
        }
        assert_eq!(store.create_book(1, bs::Book::default()).unwrap_err().0, Code::ResourceExhausted);
        let big = bs::Book { title: "x".repeat(MAX_ENTRY_BYTES), ..Default::default() };
        assert_eq!(store.create_book(2, big.clone()).unwrap_err().0, Code::InvalidArgument);
        let big = bs::Book { name: "shelves/2/books/1".into(), ..big };
        assert_eq!(store.update_book(big, &[]).unwrap_err().0, Code::InvalidArgument);
        assert_eq!(store.get_book("shelves/2/books/1").unwrap().title, "SPQR");
    }

    #[test]
    fn names_and_masks() {
        let store = Store::seeded();
        for name in ["shelves/1/books/x", "shelves//books/1", "shelves/1/books/1/x", "books/1", "shelves/+1/books/1"] {
            assert_eq!(store.get_book(name).unwrap_err(), not_found_book(name), "{name}");
        }
        let update = bs::Book { name: "shelves/1/books/1".into(), ..Default::default() };
        assert_eq!(store.update_book(update.clone(), &["nope".to_owned()]).unwrap_err().0, Code::InvalidArgument);
        assert_eq!(store.create_shelf(bs::Shelf { id: 2, theme: String::new() }).unwrap_err().0, Code::AlreadyExists);
        assert_eq!(store.create_shelf(bs::Shelf { id: 50, theme: String::new() }).unwrap().id, 50);
        assert_eq!(store.create_shelf(bs::Shelf::default()).unwrap().id, 51);
    }
}
