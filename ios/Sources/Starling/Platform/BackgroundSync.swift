// BGTaskScheduler glue. BackgroundTasks can be imported on macOS, but BGTaskScheduler is not
// available there (Mac Catalyst counts as iOS), nor on watchOS; on Linux this is compiled out.
#if canImport(BackgroundTasks) && !os(macOS) && !os(watchOS)
import BackgroundTasks
import Foundation
import os

extension Starling {
    /// Syncs in the background with a `BGProcessingTask`, when the system finds it convenient:
    /// with a network connection and, if you ask, on external power.
    ///
    /// Three steps, all required by BackgroundTasks:
    ///
    /// 1. In the app's Info.plist, add the task identifier (``defaultIdentifier`` unless you
    ///    pass your own) to `BGTaskSchedulerPermittedIdentifiers`, and `processing` to
    ///    `UIBackgroundModes`.
    /// 2. Call ``register(_:identifier:options:)`` before the app finishes launching
    ///    (in `application(_:didFinishLaunchingWithOptions:)` or the `App` initializer).
    /// 3. Call ``schedule(identifier:options:)`` once, for example when the app moves to the
    ///    background. Each run schedules the next one.
    ///
    /// Failures never reach the app: they are logged (subsystem `dev.starling`, category
    /// `background-sync`), and a run whose upload failed reports `success: false` to the
    /// system. In the simulator or the debugger, launch a scheduled task with
    /// `e -l objc -- (void)[[BGTaskScheduler sharedScheduler]
    /// _simulateLaunchForTaskWithIdentifier:@"dev.starling.sync"]`.
    public enum BackgroundSync {
        /// The task identifier used unless you pass another: `dev.starling.sync`.
        public static let defaultIdentifier = "dev.starling.sync"

        /// When a scheduled sync may run.
        public struct Options: Sendable, Hashable {
            /// The soonest the next run may start, in seconds from scheduling; the system
            /// usually waits longer. Default 15 minutes.
            public var earliestBegin: TimeInterval
            /// Whether to run only while the device is on external power. Default `false`:
            /// a sync is small, typically a few kilobytes per hundred events.
            public var requiresExternalPower: Bool

            /// Options with the given values.
            ///
            /// - Parameters:
            ///   - earliestBegin: The soonest a run may start, in seconds from scheduling.
            ///   - requiresExternalPower: Whether to run only on external power.
            public init(
                earliestBegin: TimeInterval = 15 * 60, requiresExternalPower: Bool = false
            ) {
                self.earliestBegin = earliestBegin
                self.requiresExternalPower = requiresExternalPower
            }
        }

        /// Registers the task that syncs `starling`. Call it once per identifier, before the
        /// app finishes launching; BackgroundTasks raises an exception for a second
        /// registration of the same identifier.
        ///
        /// - Parameters:
        ///   - starling: The instance to sync; it stays alive as long as the registration.
        ///   - identifier: The task identifier, as listed in Info.plist.
        ///   - options: How each run schedules the next.
        /// - Returns: `false` if the system refused the registration, for example because the
        ///   identifier is missing from Info.plist.
        @discardableResult
        public static func register(
            _ starling: Starling, identifier: String = defaultIdentifier,
            options: Options = Options()
        ) -> Bool {
            BGTaskScheduler.shared.register(forTaskWithIdentifier: identifier, using: nil) {
                task in
                run(task, starling: starling, identifier: identifier, options: options)
            }
        }

        /// Asks the system for a sync run, replacing an earlier request with the same
        /// identifier.
        ///
        /// - Parameters:
        ///   - identifier: The identifier given to ``register(_:identifier:options:)``.
        ///   - options: When the run may start and whether it needs external power.
        /// - Throws: `BGTaskScheduler.Error`, for example `.unavailable` when the user turned
        ///   Background App Refresh off, or `.notPermitted` when Info.plist does not list the
        ///   identifier.
        public static func schedule(
            identifier: String = defaultIdentifier, options: Options = Options()
        ) throws {
            let request = BGProcessingTaskRequest(identifier: identifier)
            request.requiresNetworkConnectivity = true
            request.requiresExternalPower = options.requiresExternalPower
            request.earliestBeginDate = Date(timeIntervalSinceNow: options.earliestBegin)
            try BGTaskScheduler.shared.submit(request)
        }

        /// Cancels a scheduled run that has not started.
        ///
        /// - Parameter identifier: The identifier given to ``schedule(identifier:options:)``.
        public static func cancel(identifier: String = defaultIdentifier) {
            BGTaskScheduler.shared.cancel(taskRequestWithIdentifier: identifier)
        }

        /// One run: schedule the next, sync, and tell the system how it went.
        private static func run(
            _ task: BGTask, starling: Starling, identifier: String, options: Options
        ) {
            // Scheduling first keeps the chain going even if this run expires or crashes.
            do {
                try schedule(identifier: identifier, options: options)
            } catch {
                let reason = error.localizedDescription
                backgroundLog.warning(
                    "could not schedule the next sync: \(reason, privacy: .public)")
            }

            let completion = TaskCompletion(task)
            // The upload cannot be interrupted; when time is up, report failure at once and
            // let the upload end on its own (it is bounded by the upload timeout). Batches are
            // stored before they are sent and deduplicated by the server, so nothing is lost
            // or counted twice if the app is suspended in between.
            task.expirationHandler = {
                backgroundLog.info("background sync ran out of time")
                completion.complete(success: false)
            }
            Task {
                completion.complete(success: await syncReportingSuccess(starling))
            }
        }

        /// Syncs; `false` when it is worth trying again sooner rather than later.
        private static func syncReportingSuccess(_ starling: Starling) async -> Bool {
            do {
                let report = try await starling.sync()
                if let lastError = report.lastError {
                    let pending = report.eventsPending
                    backgroundLog.info(
                        "sync unfinished, \(pending) pending: \(lastError, privacy: .public)"
                    )
                    return false
                }
                return true
            } catch StarlingError.noConsent, StarlingError.noServer {
                // Nothing may or can be sent: done, not failed.
                return true
            } catch {
                backgroundLog.warning(
                    "background sync failed: \(error.localizedDescription, privacy: .public)")
                return false
            }
        }
    }
}

/// Completes a `BGTask` exactly once, from whichever of the expiration handler and the sync
/// gets there first. `BGTask` may be completed from any thread; the lock only guards the
/// flag, which is why this wrapper can be `Sendable`.
private final class TaskCompletion: @unchecked Sendable {
    private let task: BGTask
    private let lock = NSLock()
    private var completed = false

    init(_ task: BGTask) {
        self.task = task
    }

    func complete(success: Bool) {
        lock.lock()
        let first = !completed
        completed = true
        lock.unlock()
        if first {
            task.setTaskCompleted(success: success)
        }
    }
}

private let backgroundLog = Logger(subsystem: "dev.starling", category: "background-sync")
#endif
