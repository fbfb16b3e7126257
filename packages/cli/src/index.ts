export { main, createProgram } from './main.js';
