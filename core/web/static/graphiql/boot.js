// Starts GraphiQL against this server's /graphql. The header editor is pre-filled with the
// Authorization header; the token the admin console holds in this tab is filled in too.
(function () {
  "use strict";
  var token = "";
  try {
    token = window.sessionStorage.getItem("baton.token") || "";
  } catch (e) {
    token = ""; // storage disabled: start with an empty bearer token
  }
  var fetcher = GraphiQL.createFetcher({ url: window.location.origin + "/graphql" });
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultHeaders: JSON.stringify({ Authorization: "Bearer " + token }, null, 2),
      shouldPersistHeaders: false,
      defaultEditorToolsVisibility: "headers",
      defaultQuery: "{\n  viewer {\n    user { id name }\n    roles\n    scope\n  }\n}\n",
    })
  );
})();
