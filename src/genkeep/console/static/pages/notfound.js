// The console's own not-found page: nothing of its own, only what every page shares.
import { start } from "../core/start.js";

start();
