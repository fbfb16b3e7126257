/** A TCP port free on 127.0.0.1 now: @prebuilt/fixtures' closedPort, under the name the tests that listen on it use. */
export { closedPort as freePort } from '../packages/fixtures/dist/index.js';
