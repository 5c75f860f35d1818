// newage extension for SillyTavern. SPDX-License-Identifier: AGPL-3.0-or-later
// Answering LLM_REQUESTs: one at a time (SillyTavern generates one answer at
// a time), each as a normal generation in the room's chat: the request text
// becomes the user turn and SillyTavern's generate() writes the answer, so
// the character card, persona, world info and presets apply. A request waits
// while SillyTavern generates for its own user; while ours runs, SillyTavern
// itself ignores the user's Send (the draft stays in the input box).

import { Activity } from './activity.js';

const SEEN_MAX = 1000; // request ids remembered so that none is answered twice

function uuid() {
    return crypto.randomUUID ? crypto.randomUUID()
        : `${Date.now().toString(16)}-${Math.random().toString(16).slice(2)}`;
}

function requestText(data) {
    for (const value of [data.message, data.instruction, data.currentRequest?.message, data.prompt]) {
        if (typeof value === 'string' && value) return value;
    }
    return '';
}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July',
    'August', 'September', 'October', 'November', 'December'];

/**
 * A message time SillyTavern can read back: its own getMessageTimeStamp()
 * when getContext() offers it, else the format SillyTavern 1.12 writes
 * ("December 2, 2026 10:28pm"), which its timestampToMoment() parses.
 */
function messageTimeStamp(ctx) {
    if (typeof ctx.getMessageTimeStamp === 'function') return ctx.getMessageTimeStamp();
    const d = new Date();
    const hours = d.getHours() % 12 || 12;
    const minutes = String(d.getMinutes()).padStart(2, '0');
    const meridiem = d.getHours() >= 12 ? 'pm' : 'am';
    return `${MONTHS[d.getMonth()]} ${d.getDate()}, ${d.getFullYear()} ${hours}:${minutes}${meridiem}`;
}

/** Stream frames of one answer: each increment of the text is one stream. */
class StreamWriter {
    constructor(send, requestId) {
        this.send = send;
        this.requestId = requestId;
        this.outputId = uuid();
        this.sent = '';
        this.frames = 0;
    }

    get started() {
        return this.frames > 0;
    }

    /** SillyTavern's cumulative text so far: send what is new. */
    update(text) {
        if (!text.startsWith(this.sent)) return; // rewritten: what went out stays
        let delta = text.slice(this.sent.length);
        // never split a surrogate pair (an emoji) across two chunks
        if (/[\uD800-\uDBFF]$/.test(delta)) delta = delta.slice(0, -1);
        if (delta) this.frame(delta, null);
    }

    /** The explicit end: the rest of the final text, `final: true`. */
    finish(finalText, status) {
        const tail = finalText.startsWith(this.sent) ? finalText.slice(this.sent.length) : '';
        this.frame(tail, status);
    }

    frame(data, endStatus) {
        const base = { streamId: uuid(), outputId: this.outputId, requestId: this.requestId };
        this.send('CLIENT_STREAM_START', { type: 1, numStreams: 1, ...base });
        if (data) {
            const first = this.frames === 0;
            this.send(first ? 'CLIENT_STREAM_DATA_FIRST' : 'CLIENT_STREAM_DATA_MIDDLE',
                { type: first ? 4 : 5, chunkIndex: 0, data, ...base });
            this.sent += data;
        }
        const end = { type: 3, ...base };
        if (endStatus) Object.assign(end, { final: true, status: endStatus });
        this.send('CLIENT_STREAM_END', end);
        this.frames += 1;
    }
}

/** Keep the user's draft out of a generation we start, give it back after. */
function setAsideDraft() {
    const area = document.getElementById('send_textarea');
    if (!area || !area.value) return () => {};
    const draft = area.value;
    area.value = '';
    area.dispatchEvent(new Event('input', { bubbles: true }));
    return () => {
        if (area.value) return;
        area.value = draft;
        area.dispatchEvent(new Event('input', { bubbles: true }));
    };
}

export class Answerer {
    constructor(getContext, send, conversations, onChange) {
        this.getContext = getContext;
        this.send = send;
        this.conversations = conversations;
        this.onChange = onChange;
        this.queue = [];
        this.running = null;
        this.generating = null; // the job whose generate() call runs
        this.activity = new Activity(getContext, () => this.generating !== null);
        this.seen = new Set();
        this.served = 0;
    }

    get pending() {
        return this.queue.length + (this.running ? 1 : 0);
    }

    enqueue(data) {
        const id = data?.requestId;
        if (typeof id !== 'string' || this.seen.has(id)) return;
        this.seen.add(id);
        if (this.seen.size > SEEN_MAX) this.seen.delete(this.seen.values().next().value);
        const room = typeof data.targetRoom === 'string' ? data.targetRoom : null;
        const job = { id, room, text: requestText(data), cancelled: false, stopped: false, dropped: false };
        // a job dropped at a disconnect says nothing more: the server failed it
        job.send = (event, payload) => !job.dropped && this.send(event, payload);
        this.queue.push(job);
        this.onChange();
        this.pump();
    }

    /** CANCEL_REQUEST: drop it if it waits, stop the generation if it runs. */
    cancel(data) {
        const id = data?.requestId;
        const index = this.queue.findIndex((job) => job.id === id);
        if (index >= 0) {
            this.queue.splice(index, 1);
            this.onChange();
        } else if (this.running && this.running.id === id) {
            this.running.cancelled = true;
            this.stopGeneration();
        }
    }

    /**
     * The socket is gone, so the server has failed every request it gave us:
     * forget the queue and stop the running one. Returns how many were dropped.
     */
    drop() {
        const count = this.pending;
        this.queue.length = 0;
        if (this.running) {
            this.running.dropped = true;
            if (this.generating === this.running) this.stopGeneration();
        }
        this.onChange();
        return count;
    }

    stopGeneration() {
        const ctx = this.getContext();
        if (typeof ctx.stopGeneration === 'function') ctx.stopGeneration();
        else document.getElementById('mes_stop')?.click(); // before 1.12.4
    }

    async pump() {
        if (this.running) return;
        while (this.queue.length) {
            const job = this.queue.shift();
            this.running = job;
            this.onChange();
            try {
                await this.run(job);
            } catch (err) {
                console.error('[newage] answering failed', err);
            } finally {
                this.running = null;
                this.onChange();
            }
        }
    }

    fail(job, message) {
        job.send('ERROR', { message, error: { message }, requestId: job.id });
    }

    async run(job) {
        const wanted = () => !job.cancelled && !job.dropped;
        // never switch chats or add a turn under a generation SillyTavern runs
        await this.activity.idle(wanted);
        if (!wanted()) return;
        try {
            await this.conversations.enter(job.room);
        } catch (err) {
            this.fail(job, String(err.message || err));
            return;
        }
        if (!wanted()) return;
        const ctx = this.getContext();
        const { eventSource, eventTypes } = ctx;
        const writer = new StreamWriter(job.send, job.id);
        const onToken = (text) => {
            // only tokens of our own generate() call belong to the answer
            if (this.generating === job && !job.cancelled) writer.update(String(text ?? ''));
        };
        const onStopped = () => {
            if (this.generating === job) job.stopped = true;
        };
        eventSource.on(eventTypes.STREAM_TOKEN_RECEIVED, onToken);
        eventSource.on(eventTypes.GENERATION_STOPPED, onStopped);
        let userIndex = -1;
        let result;
        let error = null;
        let restoreDraft = () => {};
        try {
            userIndex = await this.addUserTurn(job.text);
            // the user may have pressed Send while the turn was being saved
            await this.activity.idle(wanted);
            if (!wanted()) return;
            restoreDraft = setAsideDraft();
            // the requester sees `processing` now, not with the first token
            const processing = { requestId: job.id };
            if (job.room) processing.targetRoom = job.room;
            job.send('START_PROCESSING', processing);
            this.generating = job;
            // automatic_trigger: SillyTavern adds no user message of its own
            result = await ctx.generate('normal', { automatic_trigger: true });
        } catch (err) {
            error = err;
        } finally {
            this.generating = null;
            eventSource.removeListener(eventTypes.STREAM_TOKEN_RECEIVED, onToken);
            eventSource.removeListener(eventTypes.GENERATION_STOPPED, onStopped);
            restoreDraft();
        }
        this.finish(job, writer, userIndex, result, error);
    }

    finish(job, writer, userIndex, result, error) {
        const chat = this.getContext().chat;
        const last = chat[chat.length - 1];
        const text = userIndex >= 0 && chat.length - 1 > userIndex && last && !last.is_user
            ? String(last.mes ?? '') : '';
        const stopped = job.stopped || job.cancelled;
        if (job.dropped) return; // failed by the server at the disconnect
        if (job.cancelled && !writer.started) return; // the server has ended it already
        if (error && !stopped) {
            this.fail(job, `Generation failed: ${error.message || error}`);
            return;
        }
        if (writer.started) {
            if (!stopped && !result) {
                // SillyTavern ended the stream on an error of its backend
                this.fail(job, 'Generation failed (see SillyTavern).');
                return;
            }
            writer.finish(text, stopped ? 'stopped' : 'completed');
        } else if (text || stopped) {
            const answer = { type: 0, data: text, requestId: job.id, outputId: writer.outputId };
            if (stopped) answer.status = 'stopped';
            job.send('message', answer);
        } else {
            this.fail(job, 'SillyTavern produced no answer (is an API connected?).');
            return;
        }
        this.served += 1;
    }

    /** The request as the user's turn, as SillyTavern's own Send adds it. */
    async addUserTurn(text) {
        const ctx = this.getContext();
        const message = {
            name: ctx.name1,
            is_user: true,
            is_system: false,
            send_date: messageTimeStamp(ctx),
            mes: text,
            extra: {},
        };
        ctx.chat.push(message);
        const id = ctx.chat.length - 1;
        await ctx.eventSource.emit(ctx.eventTypes.MESSAGE_SENT, id);
        ctx.addOneMessage(message);
        await ctx.eventSource.emit(ctx.eventTypes.USER_MESSAGE_RENDERED, id);
        await ctx.saveChat();
        return id;
    }
}
