import BatonAPI
import Foundation
import GRDB

// The file's layout:
//
// - `store_state`: one row with the latest revision and the compacted revision (every log row
//   at or below it has been deleted). The revision lives here, not in max(changes.revision),
//   so that compaction can never hand out a revision twice.
// - `objects`: the current objects, one row per (kind, namespace, name); `namespace` is ''
//   for cluster-scoped kinds; `json` is the whole object, canonical (sorted keys).
// - `changes`: the change log a watch reads, one row per revision, with the object after the
//   change (for DELETED, the object as it was, at the deletion's revision).
extension SQLiteStore {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE store_state (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    revision INTEGER NOT NULL,
                    compacted INTEGER NOT NULL
                );
                INSERT INTO store_state (id, revision, compacted) VALUES (1, 0, 0);
                CREATE TABLE objects (
                    kind TEXT NOT NULL,
                    namespace TEXT NOT NULL,
                    name TEXT NOT NULL,
                    uid TEXT NOT NULL,
                    revision INTEGER NOT NULL,
                    json TEXT NOT NULL,
                    PRIMARY KEY (kind, namespace, name)
                );
                CREATE TABLE changes (
                    revision INTEGER PRIMARY KEY,
                    type TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    namespace TEXT NOT NULL,
                    name TEXT NOT NULL,
                    json TEXT NOT NULL
                );
                """)
        }
        return migrator
    }
}

/// One row of `objects`.
struct ObjectRow: Sendable {
    var revision: Int64
    var json: String

    func decode() throws(APIError) -> Resource {
        try ObjectRow.decode(json)
    }

    static func decode(_ json: String) throws(APIError) -> Resource {
        let value: JSONValue
        do {
            value = try JSONValue.parse(Data(json.utf8))
        } catch {
            throw APIError.internalError("a stored object is not valid JSON: \(error)")
        }
        return try Resource(json: value)
    }

    static func fetch(_ db: Database, _ key: ObjectKey) throws -> ObjectRow? {
        let row = try Row.fetchOne(db, sql: "SELECT revision, json FROM objects WHERE kind = ? AND namespace = ? AND name = ?",
                                   arguments: [key.kind, key.namespace, key.name])
        return row.map { ObjectRow(revision: $0[0], json: $0[1]) }
    }

    static func exists(_ db: Database, _ key: ObjectKey) throws -> Bool {
        try Bool.fetchOne(db, sql: "SELECT 1 FROM objects WHERE kind = ? AND namespace = ? AND name = ?",
                          arguments: [key.kind, key.namespace, key.name]) ?? false
    }

    /// The rows of `kind` in (namespace, name) order; `namespace` nil means every namespace.
    static func fetchAll(_ db: Database, kind: String, namespace: String?) throws -> [ObjectRow] {
        let rows: [Row]
        if let namespace {
            rows = try Row.fetchAll(db, sql: "SELECT revision, json FROM objects WHERE kind = ? AND namespace = ? ORDER BY name",
                                    arguments: [kind, namespace])
        } else {
            rows = try Row.fetchAll(db, sql: "SELECT revision, json FROM objects WHERE kind = ? ORDER BY namespace, name",
                                    arguments: [kind])
        }
        return rows.map { ObjectRow(revision: $0[0], json: $0[1]) }
    }

    static func insert(_ db: Database, _ key: ObjectKey, uid: String, revision: Int64, json: String) throws {
        try db.execute(sql: "INSERT INTO objects (kind, namespace, name, uid, revision, json) VALUES (?, ?, ?, ?, ?, ?)",
                       arguments: [key.kind, key.namespace, key.name, uid, revision, json])
    }

    static func update(_ db: Database, _ key: ObjectKey, revision: Int64, json: String) throws {
        try db.execute(sql: "UPDATE objects SET revision = ?, json = ? WHERE kind = ? AND namespace = ? AND name = ?",
                       arguments: [revision, json, key.kind, key.namespace, key.name])
    }

    static func delete(_ db: Database, _ key: ObjectKey) throws {
        try db.execute(sql: "DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?",
                       arguments: [key.kind, key.namespace, key.name])
    }
}

/// One row of `changes`.
struct LoggedChange: Sendable {
    var revision: Int64
    var type: WatchEventType
    var kind: String
    var namespace: String
    var json: String

    func event() throws(APIError) -> WatchEvent {
        WatchEvent(type: type, object: try ObjectRow.decode(json), revision: revision)
    }
}

/// The revision counter and the change log.
enum ChangeLog {
    struct State: Sendable {
        /// The latest revision.
        var revision: Int64
        /// Every change at or below this revision has been compacted away; a watch may start
        /// from this revision or later.
        var compacted: Int64
    }

    static func state(_ db: Database) throws -> State {
        guard let row = try Row.fetchOne(db, sql: "SELECT revision, compacted FROM store_state WHERE id = 1") else {
            throw APIError.internalError("the store's state row is missing")
        }
        return State(revision: row[0], compacted: row[1])
    }

    /// Takes the next revision. Call inside the write transaction that uses it.
    static func nextRevision(_ db: Database) throws -> Int64 {
        try db.execute(sql: "UPDATE store_state SET revision = revision + 1 WHERE id = 1")
        return try state(db).revision
    }

    /// Appends the change at `revision`, and compacts the log when `revision` is a multiple of
    /// `compactionInterval`.
    static func append(_ db: Database, revision: Int64, type: WatchEventType, key: ObjectKey, json: String,
                       configuration: SQLiteStore.Configuration) throws {
        try db.execute(sql: "INSERT INTO changes (revision, type, kind, namespace, name, json) VALUES (?, ?, ?, ?, ?, ?)",
                       arguments: [revision, type.rawValue, key.kind, key.namespace, key.name, json])
        let interval = max(1, configuration.compactionInterval)
        let keep = max(1, configuration.retainedRevisions)
        if revision % interval == 0, revision > keep {
            let upTo = revision - keep
            try db.execute(sql: "DELETE FROM changes WHERE revision <= ?", arguments: [upTo])
            try db.execute(sql: "UPDATE store_state SET compacted = max(compacted, ?) WHERE id = 1", arguments: [upTo])
        }
    }

    /// Up to `limit` changes after `revision`, in revision order, optionally only those of
    /// `kind` and `namespace`, with the state they were read at.
    static func page(_ db: Database, after revision: Int64, kind: String? = nil, namespace: String? = nil,
                     limit: Int) throws -> (state: State, changes: [LoggedChange]) {
        let state = try state(db)
        var sql = "SELECT revision, type, kind, namespace, json FROM changes WHERE revision > ?"
        var arguments: StatementArguments = [revision]
        if let kind {
            sql += " AND kind = ?"
            arguments += [kind]
        }
        if let namespace {
            sql += " AND namespace = ?"
            arguments += [namespace]
        }
        sql += " ORDER BY revision LIMIT ?"
        arguments += [limit]
        let changes = try Row.fetchAll(db, sql: sql, arguments: arguments).map { row in
            LoggedChange(revision: row[0], type: WatchEventType(rawValue: row[1]) ?? .modified,
                         kind: row[2], namespace: row[3], json: row[4])
        }
        return (state, changes)
    }

    static func tooOld(_ revision: Int64, compacted: Int64) -> APIError {
        StoreSemantics.tooOld(revision, compacted: compacted)
    }
}
