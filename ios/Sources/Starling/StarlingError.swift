import Foundation
internal import StarlingFFI

/// Everything a call into Starling can fail with.
///
/// Every case carries a human-readable ``reason``, which is also the error's
/// `localizedDescription`. Reasons are written for the app developer (they name the offending
/// event or property and the rule it breaks); they never contain property values.
public enum StarlingError: Error, LocalizedError, Sendable, Hashable {
    /// The event was rejected by validation and not recorded: a bad name or key, too many
    /// properties, a string too long, a number that is not finite, or a time out of range.
    case invalidEvent(reason: String)

    /// Consent has not been granted (see ``Starling/setConsent(_:)``); nothing was recorded or
    /// sent.
    case noConsent(reason: String)

    /// Events arrive faster than the device can store them, and the in-memory queue is full; the
    /// event was not recorded.
    case queueFull(reason: String)

    /// The ``Starling/Configuration`` is not usable, for example a zero interval or a server URL
    /// that is not `https://` or `http://`.
    case invalidConfiguration(reason: String)

    /// The on-device store failed, for example because the disk is full. Events not yet flushed
    /// stay in memory and are retried.
    case storage(reason: String)

    /// ``Starling/sync()`` was called, but the configuration has no server URL.
    case noServer(reason: String)

    /// The instance was closed (see ``Starling/close()``).
    case closed(reason: String)

    /// No signal, bandit or decision goes by the name or id passed: a typo, a definition missing
    /// from ``Starling/Configuration/signals`` or ``Starling/Configuration/bandits``, or a
    /// decision id this SDK did not make. The reason quotes the name.
    case notFound(reason: String)

    /// A bandit refused its input: a context of the wrong length or with a number that is not
    /// finite, or a reward outside the range its policy learns from; a learning example or
    /// task that does not fit its model; or a private release's parameters.
    case invalidArgument(reason: String)

    /// A bug inside Starling, caught before it could reach the app. Please report it with the
    /// reason.
    case internalError(reason: String)

    /// Why the call failed, in a sentence.
    public var reason: String {
        switch self {
        case .invalidEvent(let reason), .noConsent(let reason), .queueFull(let reason),
            .invalidConfiguration(let reason), .storage(let reason), .noServer(let reason),
            .closed(let reason), .notFound(let reason), .invalidArgument(let reason),
            .internalError(let reason):
            return reason
        }
    }

    /// The ``reason``.
    public var errorDescription: String? { reason }
}

extension StarlingError {
    /// Maps the generated error onto the public one. The switch has no `default`, so a new Rust
    /// variant fails this build until it is mapped here.
    init(_ error: StarlingFFI.StarlingError) {
        switch error {
        case .InvalidEvent(let reason): self = .invalidEvent(reason: reason)
        case .NoConsent(let reason): self = .noConsent(reason: reason)
        case .QueueFull(let reason): self = .queueFull(reason: reason)
        case .InvalidConfig(let reason): self = .invalidConfiguration(reason: reason)
        case .Storage(let reason): self = .storage(reason: reason)
        case .NoServer(let reason): self = .noServer(reason: reason)
        case .Closed(let reason): self = .closed(reason: reason)
        case .NotFound(let reason): self = .notFound(reason: reason)
        case .InvalidArgument(let reason): self = .invalidArgument(reason: reason)
        case .Internal(let reason): self = .internalError(reason: reason)
        }
    }
}

/// Runs `body`, which calls into the generated bindings, and rethrows whatever it throws as a
/// ``StarlingError``, so that no generated type ever reaches the app.
func mappingErrors<T>(_ body: () throws -> T) throws(StarlingError) -> T {
    do {
        return try body()
    } catch let error as StarlingFFI.StarlingError {
        throw StarlingError(error)
    } catch let error as StarlingError {
        throw error
    } catch {
        // The bindings' own failures (a buffer that does not decode, for example) are bugs.
        throw .internalError(reason: "unexpected error from the native library: \(error)")
    }
}
