// An error whose message is written for the user: the page shows it as it is (any other
// error is a bug, logged to the console as well).

export class UserError extends Error {}
