'use strict';
// subscribeReminder: wx.requestSubscribeMessage's answer for the reminder template, reported to
// the real server (dev mode, reminders on) for a joined meeting.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');

const { createClient, WX_SUBSCRIBE_ERRNO } = require('../wxauth.js');
const { startServer, fakeWx } = require('./harness.js');

const TEMPLATE = 'tmpl-client-test-reminder';

let server;

before(async () => {
  server = await startServer({ REMINDER_TEMPLATE_ID: TEMPLATE });
});

after(async () => {
  if (server) await server.stop();
});

function client(user) {
  const wx = fakeWx({ server, user });
  return { wx, api: createClient({ apiRoot: server.api, wx }) };
}

async function joinedMeeting(api) {
  const start = new Date(Date.now() + 3 * 3600 * 1000);
  const end = new Date(start.getTime() + 3600 * 1000);
  const meeting = await api.request('meeting/publish', {
    method: 'POST',
    data: { title: '周例会', content: '议程', location: '305', startTime: start.toISOString(), endTime: end.toISOString() },
  });
  await api.request('meeting/join', { method: 'POST', data: { id: meeting.id } });
  return meeting.id;
}

test('a consent is reported and stored; a decline is reported and stores nothing', async () => {
  const { wx, api } = client('subscriber');
  const id = await joinedMeeting(api);
  wx.subscribeAnswers = { [TEMPLATE]: 'accept' };
  const answer = await api.subscribeReminder(id, TEMPLATE);
  assert.deepEqual(answer, { id, templateId: TEMPLATE, subscribed: true });
  assert.deepEqual(wx.subscribeRequests, [[TEMPLATE]]);
  assert.equal(server.sql(`SELECT count(*) FROM meeting_reminder WHERE meeting_id = ${Number(id)} AND status = 0`), '1');

  const other = client('decliner');
  await other.api.request('meeting/join', { method: 'POST', data: { id } });
  other.wx.subscribeAnswers = { [TEMPLATE]: 'reject' };
  const declined = await other.api.subscribeReminder(id, TEMPLATE);
  assert.equal(declined.subscribed, false);
  assert.equal(server.sql(`SELECT count(*) FROM meeting_reminder WHERE meeting_id = ${Number(id)}`), '1');
});

test('WeChat failing or not answering rejects with WX_SUBSCRIBE_ERRNO and reports nothing', async () => {
  const { wx, api } = client('unlucky');
  const id = await joinedMeeting(api);
  const before = wx.count('meeting/subscribe');
  wx.subscribeAnswers = null;
  await assert.rejects(api.subscribeReminder(id, TEMPLATE), (e) => e.errno === WX_SUBSCRIBE_ERRNO && e.data.errCode === 10003);
  wx.subscribeAnswers = {};
  await assert.rejects(api.subscribeReminder(id, TEMPLATE), (e) => e.errno === WX_SUBSCRIBE_ERRNO);
  assert.equal(wx.count('meeting/subscribe'), before);
  await assert.rejects(api.subscribeReminder(id, ''), TypeError);
});

test('the server refuses a meeting not joined with 402 and a reason', async () => {
  const owner = client('owner');
  const start = new Date(Date.now() + 3 * 3600 * 1000);
  const meeting = await owner.api.request('meeting/publish', {
    method: 'POST',
    data: { title: '周例会', content: '议程', location: '305', startTime: start.toISOString(), endTime: new Date(start.getTime() + 3600e3).toISOString() },
  });
  const { wx, api } = client('stranger');
  wx.subscribeAnswers = { [TEMPLATE]: 'accept' };
  await assert.rejects(api.subscribeReminder(meeting.id, TEMPLATE), (e) => e.errno === 402 && /join/.test(e.data.reason));
});
