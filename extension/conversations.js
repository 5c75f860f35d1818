// newage extension for SillyTavern. SPDX-License-Identifier: AGPL-3.0-or-later
// Which SillyTavern chat answers a newage room: by default each room gets
// its own chat with the current character (created on its first request,
// named after the room), so two rooms never share a conversation.

const PREFIX = 'newage - ';

/** A file name SillyTavern accepts, recognisable as the room's. */
export function chatName(room) {
    const clean = String(room).replace(/[\\/:*?"<>|\u0000-\u001f]/g, '_').slice(0, 100);
    return PREFIX + clean;
}

export class Conversations {
    constructor(getContext, settings) {
        this.getContext = getContext;
        this.settings = settings;
    }

    /**
     * Open the chat that answers `room` with the current character. Throws
     * with a message for the requester when SillyTavern cannot answer.
     */
    async enter(room) {
        const ctx = this.getContext();
        if (ctx.groupId) return; // a group chat answers in place
        if (ctx.characterId === undefined || ctx.characterId === null || !ctx.characters[ctx.characterId]) {
            throw new Error('No character is open in SillyTavern.');
        }
        if (this.settings.conversation === 'current' || !room) return;
        // before 1.12.1 there is no public way to switch chats: answer in place
        if (typeof ctx.openCharacterChat !== 'function') return;
        const name = chatName(room);
        if (ctx.getCurrentChatId() === name) return;
        // opens the character's chat of that name, or starts it (with the
        // character's greeting) when there is none yet, as "New chat" does
        await ctx.openCharacterChat(name);
        if (this.getContext().getCurrentChatId() !== name) {
            throw new Error(`SillyTavern did not open the chat "${name}".`);
        }
    }
}
