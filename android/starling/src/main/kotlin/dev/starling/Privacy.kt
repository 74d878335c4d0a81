package dev.starling

import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.withContext
import dev.starling.internal.ConsentPurpose as FfiPurpose
import dev.starling.internal.PrivacySettings as FfiPrivacySettings
import dev.starling.internal.PrivateReportDefinition as FfiReport
import dev.starling.internal.PrivateReportKind as FfiReportKind
import dev.starling.internal.Starling as FfiStarling

/**
 * The privacy layer: budgets, daily private reports, consent per purpose and receipts.
 * `docs/privacy.md` describes the threat model and each mechanism.
 *
 * ```kotlin
 * val starling = Starling.openWithPrivacy(
 *     config,
 *     PrivacySettings(reports = listOf(PrivateReport.EventCounts("usage", listOf("open"), maxPerEvent = 5, epsilon = 0.5))),
 * )
 * starling.setPurposeConsent(ConsentPurpose.PRIVATE_REPORTS, true)
 * starling.privacyReceipts().forEach { println("${it.channel}: ${it.outline}") }
 * ```
 */
public enum class ConsentPurpose {
    /** Sending the app's events as recorded. */
    RAW_EVENTS,

    /** Sending daily private reports (noised aggregates). */
    PRIVATE_REPORTS,

    /** Signals and bandit decisions on the device. */
    PERSONALIZATION,

    /** Taking part in federated learning. */
    FEDERATED_LEARNING,
    ;

    internal fun toFfi(): FfiPurpose = when (this) {
        RAW_EVENTS -> FfiPurpose.RAW_EVENTS
        PRIVATE_REPORTS -> FfiPurpose.PRIVATE_REPORTS
        PERSONALIZATION -> FfiPurpose.PERSONALIZATION
        FEDERATED_LEARNING -> FfiPurpose.FEDERATED_LEARNING
    }
}

/** One daily private report; the device noises it before it leaves. */
public sealed class PrivateReport {
    /** Its name: letters, digits, `_`, `-` and `.`. */
    public abstract val name: String

    /** Privacy cost of one day's report (pure differential privacy). */
    public abstract val epsilon: Double

    /** How often each of [events] happened that day, each count at most [maxPerEvent]. */
    public data class EventCounts(
        override val name: String,
        val events: List<String>,
        val maxPerEvent: Int,
        override val epsilon: Double,
    ) : PrivateReport()

    /** A histogram of the numeric [property] of [event], over buckets split at [edges]. */
    public data class Histogram(
        override val name: String,
        val event: String,
        val property: String,
        val edges: List<Double>,
        val maxValues: Int,
        override val epsilon: Double,
    ) : PrivateReport()

    /** Which of [events] happened most that day (or `none`), by randomized response. */
    public data class TopEvent(
        override val name: String,
        val events: List<String>,
        override val epsilon: Double,
    ) : PrivateReport()

    internal fun toFfi(): FfiReport {
        val kind = when (this) {
            is EventCounts -> FfiReportKind.EventCounts(events, maxPerEvent.toUInt())
            is Histogram -> FfiReportKind.Histogram(event, property, edges, maxValues.toUInt())
            is TopEvent -> FfiReportKind.TopEvent(events)
        }
        return FfiReport(name, kind, epsilon)
    }
}

/**
 * Privacy budgets and reports for [Starling.Companion.openWithPrivacy]. The defaults are the
 * core's: epsilon 1 per day and 3 per 7 days, rho 0.5 per day; the server can lower them.
 */
public data class PrivacySettings @JvmOverloads constructor(
    val epsilonPerDay: Double = 1.0,
    val epsilonPerWeek: Double = 3.0,
    val rhoPerDay: Double = 0.5,
    val reports: List<PrivateReport> = emptyList(),
    /** Replace the pseudonymous device id this often, in ms; `null` never on its own. */
    val deviceIdRotationMs: Long? = null,
) {
    internal fun toFfi() = FfiPrivacySettings(
        epsilonPerDay,
        epsilonPerWeek,
        rhoPerDay,
        reports.map { it.toFfi() },
        deviceIdRotationMs?.toULong(),
    )
}

/** One release that left (or is about to leave) the device. */
public data class PrivacyReceipt(
    val id: String,
    /** When it was charged, Unix epoch ms. */
    val chargedMs: Long,
    /** When the server acknowledged it; `null` while it waits. */
    val sentMs: Long?,
    /** Where it went, such as `report:usage`. */
    val channel: String,
    /** What it held, in words. */
    val outline: String,
    /** `epsilon` or `rho`. */
    val measure: String,
    /** How much of that budget it spent. */
    val amount: Double,
)

/** What has been spent in each budget window. */
public data class PrivacySpending(
    val epsilonDay: Double,
    val epsilonWeek: Double,
    val rhoDay: Double,
    /** The time the windows end at, Unix epoch ms. */
    val clockMs: Long,
)

/** What one round of private reports did. */
public data class PrivateReportsOutcome(
    val charged: Int,
    val sent: Int,
    /** Reports the budget refused, with the reason; tried again later. */
    val refused: List<String>,
    /** Why sending failed, if it did; the reports are resent later at no cost. */
    val sendError: String?,
)

/**
 * Opens an instance like [Starling.open], with privacy budgets and daily private reports.
 * Blocking: call it off the main thread.
 */
@Throws(StarlingException::class)
public fun Starling.Companion.openWithPrivacy(config: StarlingConfig, privacy: PrivacySettings): Starling {
    val ffiConfig = config.toFfi()
    val ffiPrivacy = privacy.toFfi()
    return Starling(ffiCall { FfiStarling.openWithPrivacy(ffiConfig, ffiPrivacy) }, config)
}

/** Grants or withdraws consent for one [purpose]; withdrawing deletes what it kept. Waits on disk I/O. */
@Throws(StarlingException::class)
public fun Starling.setPurposeConsent(purpose: ConsentPurpose, granted: Boolean) {
    call { inner.setPurposeConsent(purpose.toFfi(), granted) }
}

/** Whether consent for [purpose] is granted. */
@Throws(StarlingException::class)
public fun Starling.purposeConsent(purpose: ConsentPurpose): Boolean = call { inner.purposeConsent(purpose.toFfi()) }

/** Every private release, newest first, at most [limit]. */
@JvmOverloads
@Throws(StarlingException::class)
public fun Starling.privacyReceipts(limit: Int = 100): List<PrivacyReceipt> =
    call { inner.privacyReceipts(limit.toUInt()) }.map {
        PrivacyReceipt(it.id, it.chargedMs, it.sentMs, it.channel, it.outline, it.measure, it.amount)
    }

/** What has been spent in each budget window. */
@Throws(StarlingException::class)
public fun Starling.privacySpent(): PrivacySpending =
    call { inner.privacySpent() }.let { PrivacySpending(it.epsilonDay, it.epsilonWeek, it.rhoDay, it.clockMs) }

/**
 * Clips [values] to L2 norm [maxNorm], adds Gaussian noise for a cost of [rho] (zCDP), charges it
 * and returns the noised vector, for the app to send itself. Needs consent for
 * [ConsentPurpose.FEDERATED_LEARNING]; beyond the budget it throws
 * [StarlingException.InvalidArgument] with the reason. Waits on disk I/O.
 */
@Throws(StarlingException::class)
public fun Starling.releasePrivateVector(channel: String, values: List<Double>, maxNorm: Double, rho: Double): List<Double> =
    call { inner.releasePrivateVector(channel, values, maxNorm, rho) }

/** Noises, charges and sends the private reports that are due, on the calling thread. Waits on the network. */
@Throws(StarlingException::class)
public fun Starling.sendPrivateReportsBlocking(): PrivateReportsOutcome =
    call { inner.sendPrivateReports() }.let {
        PrivateReportsOutcome(it.charged.toInt(), it.sent.toInt(), it.refused, it.sendError)
    }

/** [sendPrivateReportsBlocking] on [Dispatchers.IO]. */
@Throws(StarlingException::class)
public suspend fun Starling.sendPrivateReports(): PrivateReportsOutcome =
    withContext(Dispatchers.IO) { sendPrivateReportsBlocking() }
