// App lifecycle glue for UIKit platforms (iOS, iPadOS, Mac Catalyst, tvOS, visionOS). It is
// compiled out elsewhere, including on Linux, where the tests run.
#if canImport(UIKit) && !os(watchOS)
import UIKit
import os

extension Starling {
    /// Flushes when the app moves to the background and syncs when it returns to the
    /// foreground.
    ///
    /// Create one after opening Starling, on the main actor, and keep it as long as the
    /// instance:
    ///
    /// ```swift
    /// let lifecycle = Starling.LifecycleObserver(starling)
    /// lifecycle.start()
    /// ```
    ///
    /// On entering the background it asks UIKit for background time
    /// (`beginBackgroundTask`) so that the flush can finish before the app is suspended.
    /// Failures never reach the app: they are logged (subsystem `dev.starling`, category
    /// `lifecycle`), and the events wait for the next flush or sync. Missing consent and a
    /// missing server URL are not failures here; they only mean there is nothing to do.
    ///
    /// Not for app extensions, where `UIApplication.shared` is unavailable; call
    /// ``Starling/flush()`` yourself there.
    @MainActor
    public final class LifecycleObserver {
        private let starling: Starling
        // Only touched on the main actor, except in `deinit`, which has the only reference.
        private nonisolated(unsafe) var tokens: [any NSObjectProtocol] = []

        /// An observer for `starling`; it does nothing until ``start()``.
        public init(_ starling: Starling) {
            self.starling = starling
        }

        deinit {
            for token in tokens {
                NotificationCenter.default.removeObserver(token)
            }
        }

        /// Starts observing. Calling it again does nothing.
        public func start() {
            guard tokens.isEmpty else { return }
            let center = NotificationCenter.default
            tokens = [
                center.addObserver(
                    forName: UIApplication.didEnterBackgroundNotification, object: nil,
                    queue: .main
                ) { [weak self] _ in
                    MainActor.assumeIsolated { self?.didEnterBackground() }
                },
                center.addObserver(
                    forName: UIApplication.willEnterForegroundNotification, object: nil,
                    queue: .main
                ) { [weak self] _ in
                    MainActor.assumeIsolated { self?.willEnterForeground() }
                },
            ]
        }

        /// Stops observing; ``start()`` starts again.
        public func stop() {
            for token in tokens {
                NotificationCenter.default.removeObserver(token)
            }
            tokens = []
        }

        private func didEnterBackground() {
            let backgroundTime = BackgroundTime(name: "Starling flush")
            let starling = starling
            Task {
                do {
                    try await starling.flush()
                } catch {
                    let reason = error.localizedDescription
                    lifecycleLog.warning(
                        "flush in the background failed: \(reason, privacy: .public)")
                }
                backgroundTime.end()
            }
        }

        private func willEnterForeground() {
            let starling = starling
            Task {
                do {
                    let report = try await starling.sync()
                    if let lastError = report.lastError {
                        let pending = report.eventsPending
                        lifecycleLog.info(
                            "sync unfinished, \(pending) pending: \(lastError, privacy: .public)"
                        )
                    }
                } catch StarlingError.noConsent, StarlingError.noServer {
                    // Nothing may or can be sent; not a failure.
                } catch {
                    let reason = error.localizedDescription
                    lifecycleLog.warning(
                        "sync in the foreground failed: \(reason, privacy: .public)")
                }
            }
        }
    }
}

/// Background execution time from UIKit, ended exactly once: when the work is done or when
/// the time runs out, whichever comes first.
@MainActor
private final class BackgroundTime {
    private var identifier = UIBackgroundTaskIdentifier.invalid

    init(name: String) {
        identifier = UIApplication.shared.beginBackgroundTask(withName: name) { [weak self] in
            // Called on the main thread when the time is up. The flush may then be suspended
            // with the app and finish when it resumes; only if the system ends the app in
            // between are the events not yet committed lost.
            MainActor.assumeIsolated { self?.end() }
        }
    }

    func end() {
        guard identifier != .invalid else { return }
        UIApplication.shared.endBackgroundTask(identifier)
        identifier = .invalid
    }
}

private let lifecycleLog = Logger(subsystem: "dev.starling", category: "lifecycle")
#endif
