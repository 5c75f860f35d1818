// newage extension for SillyTavern. SPDX-License-Identifier: AGPL-3.0-or-later
// Whether SillyTavern is generating on its own (the user's Send, Regenerate,
// Continue, …). Its generate() never refuses a second generation: two at once
// mix their tokens and the second prompt holds the first's half-written
// reply. So a request waits until SillyTavern is idle.

const START_GRACE_MS = 5000; // a start SillyTavern gives up early (a slash command) never ends
const POLL_MS = 100;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** SillyTavern shows its Stop button for exactly as long as a generation runs. */
function stopButtonShown() {
    const stop = document.getElementById('mes_stop');
    return !!stop && getComputedStyle(stop).display !== 'none';
}

export class Activity {
    /**
     * @param {Function} getContext SillyTavern.getContext
     * @param {Function} ours true while our own generate() call runs
     */
    constructor(getContext, ours) {
        this.ours = ours;
        this.startedAt = 0;
        const { eventSource, eventTypes } = getContext();
        // The Stop button shows only after SillyTavern's first awaits (slash
        // commands, a ping of its server): GENERATION_STARTED covers the gap.
        eventSource.on(eventTypes.GENERATION_STARTED, (type, _options, dryRun) => {
            // a dry run only builds a prompt; quiet ones run beside the chat
            if (dryRun || type === 'quiet' || this.ours()) return;
            this.startedAt = Date.now();
        });
        const ended = () => {
            this.startedAt = 0;
        };
        eventSource.on(eventTypes.GENERATION_ENDED, ended);
        eventSource.on(eventTypes.GENERATION_STOPPED, ended);
    }

    get busy() {
        if (stopButtonShown()) return true;
        return this.startedAt > 0 && Date.now() - this.startedAt < START_GRACE_MS;
    }

    /** Resolves once SillyTavern is idle, or as soon as `wanted()` turns false. */
    async idle(wanted) {
        while (this.busy && wanted()) await sleep(POLL_MS);
    }
}
